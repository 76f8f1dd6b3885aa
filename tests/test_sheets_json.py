"""How the Sheets client reads a response body, and finds numbers in text columns."""

from __future__ import annotations

import json
import time

import pytest

from listing_sync.sheets import _json_model, number_columns


def test_responses_read_as_the_standard_library_reads_them() -> None:
    body = b'{"range":"A1:C2","values":[["TK-1",35800000,120.5,true,"\\u5186"],[45000.25]]}'
    assert _json_model(False).deserialize(body) == json.loads(body)


def test_an_integer_beyond_64_bits_stays_an_integer() -> None:
    # orjson would read it as a float; the standard library keeps every digit.
    body = b'{"values":[[123456789012345678901234567890]]}'
    value = _json_model(False).deserialize(body)["values"][0][0]
    assert value == 123456789012345678901234567890
    assert isinstance(value, int)


def test_a_body_that_is_not_json_is_handed_back_as_the_client_does() -> None:
    assert _json_model(False).deserialize(b"<html>502</html>") == "<html>502</html>"


def test_the_data_wrapper_is_unwrapped_when_the_api_declares_it() -> None:
    assert _json_model(True).deserialize(b'{"data":{"a":1}}') == {"a": 1}
    assert _json_model(False).deserialize(b'{"data":{"a":1}}') == {"data": {"a": 1}}


def testnumber_columns_ignore_flags_text_and_short_rows() -> None:
    chunk: list[list[object]] = [["A", True, "x"], ["B"], ["C", False, 3.5, 7]]
    assert number_columns(chunk, {0, 1, 2, 3, 9}) == [2, 3]
    assert number_columns(chunk, set()) == []
    assert number_columns([], {0}) == []


def test_read_ahead_keeps_order_and_runs_at_most_count_at_once() -> None:
    import threading
    import time

    from listing_sync.workers import Workers

    opened: list[object] = []
    lock = threading.Lock()
    running = peak = 0

    class Http:
        def close(self) -> None:
            pass

    def new_http() -> Http:
        http = Http()
        opened.append(http)
        return http

    fetchers = Workers(3, name="t", local=new_http)

    def job(key: int) -> tuple[int, object]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02 * (key % 3))  # later keys may finish first
        with lock:
            running -= 1
        return key, fetchers.local()

    results = list(fetchers.ahead(job, range(12)))
    fetchers.close()
    assert [key for key, _ in results] == list(range(12))
    assert peak == 3
    # Each worker used its own connection, kept from one job to the next.
    assert {id(http) for _, http in results} == {id(h) for h in opened}
    assert len(opened) == 3


def test_read_ahead_raises_where_the_failed_result_would_be() -> None:
    import pytest

    from listing_sync.workers import Workers

    class Http:
        def close(self) -> None:
            pass

    fetchers = Workers(2, name="t", local=Http)

    def job(key: int) -> int:
        if key == 3:
            raise ValueError("chunk 3 failed")
        return key

    seen: list[int] = []
    with pytest.raises(ValueError, match="chunk 3"):
        for key in fetchers.ahead(job, range(10)):
            seen.append(key)
    assert seen == [0, 1, 2]
    fetchers.close()


def test_rows_per_response_aims_at_two_megabytes_from_what_came() -> None:
    from listing_sync.sheets import MAX_CHUNK_ROWS, MIN_CHUNK_ROWS, rows_per_response

    row = ["TK-0000001", "中古マンション", 35800000, 120.55, True] * 8  # about 500 bytes of JSON
    rows = [row] * 1000
    size = len(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode())
    assert MIN_CHUNK_ROWS < rows_per_response(rows, 500) == 2_000_000 * 1000 // size < 5000
    # Dense rows: fewer a response; sparse ones: as many as allowed.
    assert rows_per_response([["x" * 50_000]] * 200, 500) == MIN_CHUNK_ROWS
    assert rows_per_response([["x"]] * 200, 500) == MAX_CHUNK_ROWS
    # Too few rows to judge (the sheet ended early): what was asked stays.
    assert rows_per_response([row] * 10, 777) == 777
    # An integer beyond 64 bits is measured too.
    assert rows_per_response([[10**30]] * 200, 500) == MAX_CHUNK_ROWS


@pytest.mark.parametrize(
    ("weighed", "rows_left", "per_chunk", "expected"),
    [
        (6_000, 100_000, 1, 6_000),  # 17 requests: the ~2 MB chunks stay
        (6_000, 240_000, 1, 6_000),  # exactly 40
        (6_000, 494_000, 1, 12_350),  # 83 would wait for the next minute: 40 larger ones
        (6_000, 240_000, 2, 12_000),  # a batchGet beside each chunk: 20 chunks
        (4_000, 999_998, 1, 25_000),  # a grid a million rows tall, mostly empty
        (4_000, 0, 1, 4_000),
    ],
)
def test_rows_per_request_keeps_a_tab_within_the_minutes_quota(
    weighed: int, rows_left: int, per_chunk: int, expected: int
) -> None:
    """Chunks stay ~2 MB until a tab would take more than 40 requests; then they grow."""
    from listing_sync.sheets import rows_per_request

    assert expected == rows_per_request(weighed, rows_left, per_chunk)


def test_read_ahead_limit_runs_fewer_at_once() -> None:
    """``limit`` below the worker count bounds the jobs running ahead (memory)."""
    import threading
    import time

    from listing_sync.workers import Workers

    lock = threading.Lock()
    running = peak = 0

    def job(key: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return key

    with Workers(4, name="t") as fetchers:
        assert list(range(8)) == list(fetchers.ahead(job, range(8), limit=2))
    assert 2 == peak


def test_read_ahead_starts_its_first_jobs_at_once_and_closing_cancels_the_rest() -> None:
    """The first ``count`` jobs run before anything is taken (the sheet's next chunks are
    asked for while the first one's shown values are); closing then, before taking
    anything, starts no other."""
    import threading

    from listing_sync.workers import Workers

    started: list[int] = []
    go = threading.Event()

    def job(key: int) -> int:
        started.append(key)
        go.wait(5)
        return key

    with Workers(2, name="t") as fetchers:
        ahead = fetchers.ahead(job, range(10))
        deadline = time.monotonic() + 5
        while len(started) < 2:
            assert time.monotonic() < deadline, "the first jobs did not start before a take"
            time.sleep(0.005)
        ahead.close()
        go.set()
        time.sleep(0.05)
    assert [0, 1] == sorted(started)
