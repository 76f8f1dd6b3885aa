"""Helper processes sort and convert rows exactly as the main process does.

``convert.Helpers`` takes a large reading's batches to other processes (real ones
here: ``python -m listing_sync.pipeline.convert``). Whatever they do, the batches a
reading yields, its warnings, problems and row count must be those of a reading done
in one process: with trusted rows, a selective sync, bad rows, two tabs, and helpers
that fail to start or die in the middle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple
from typing import Any

import pytest

from bench import data
from listing_sync import mapping
from listing_sync.pipeline import convert
from listing_sync.pipeline.progress import NoProgress
from listing_sync.pipeline.read import READ_BATCH, ReadBatch, SheetReading, TabReading
from listing_sync.schema import LISTINGS
from listing_sync.sheets import SheetBlock, number_columns

RESPONSE = 2_500  # rows a Sheets response holds here (a real one holds thousands)
ALIASES = {mapping.normalize_header(h): c for h, c in data.HEADERS.items() if c}


def hostile(rows: list[list[Any]]) -> list[list[Any]]:
    """Spoil some rows the ways offices do; each must come out as the careful read says."""
    price = list(data.HEADERS).index("価格")
    walk = list(data.HEADERS).index("徒歩")
    for i in range(0, len(rows), 97):
        rows[i][price] = "時価"  # a problem: not a price
    for i in range(5, len(rows), 89):
        rows[i][walk] = "#N/A"  # a formula error: a warning, the row is kept
    for i in range(7, len(rows), 101):
        rows[i] = [None, *rows[i][1:]]  # no key: a problem
    for i in range(9, len(rows), 211):
        rows[i] = []  # an empty row: not counted
    for i in range(11, len(rows), 307):
        rows[i] = [*rows[i], "beyond the header"]  # a warning
    rows[20][0] = rows[19][0]  # a duplicate key (the plan's business: both come out)
    return rows


def two_tabs(n: int) -> tuple[list[TabReading], list[tuple[int, SheetBlock]]]:
    """Two tabs: the bench sheet, and the same columns in another order."""
    first = data.sheet(n, seed=3)
    second = data.sheet(n // 2, seed=4)
    order = list(reversed(range(len(second[0]))))
    second = [[row[i] if i < len(row) else None for i in order] for row in second]
    for row in second[1:]:
        row[-1] = f"2-{row[-1]}"  # other keys (the key column is last on this tab)
    tabs = [
        TabReading(tab, mapping.build_header_map(rows[0], ALIASES, tab=tab))
        for tab, rows in (("一覧", first), ("別館", second))
    ]
    blocks: list[tuple[int, SheetBlock]] = []
    for index, rows in enumerate((hostile(first[1:]), hostile(second[1:]))):
        for at in range(0, len(rows), RESPONSE):
            blocks.append((index, SheetBlock(2 + at, rows[at : at + RESPONSE])))
    return tabs, blocks


def read(
    tabs: list[TabReading], blocks: Iterable[tuple[int, SheetBlock]], **settings: Any
) -> tuple[list[tuple[Any, ...]], SheetReading]:
    """Read every batch; return them as plain tuples, and the reading."""
    reading = SheetReading(tabs=tabs, blocks=iter(blocks), progress=NoProgress(), **settings)
    batches = [flat(batch) for batch in reading.batches()]
    return batches, reading


def paced(blocks: list[tuple[int, SheetBlock]]) -> Iterator[tuple[int, SheetBlock]]:
    """Hand the blocks on as a sheet tens of milliseconds away would, not all at once:
    the main process then does not convert everything itself before a helper is up."""
    for block in blocks:
        yield block
        time.sleep(0.1)


def flat(batch: ReadBatch) -> tuple[Any, ...]:
    valid = [None if v is None else astuple(v) for v in batch.valid]
    return (batch.tab, batch.rows, batch.numbers, valid)


def findings(reading: SheetReading) -> tuple[Any, ...]:
    return (reading.rows_seen, reading.warnings, [astuple(p) for p in reading.problems])


@pytest.fixture(scope="module")
def sheet() -> tuple[list[TabReading], list[tuple[int, SheetBlock]]]:
    return two_tabs(12_000)  # 18,000 rows in 8 responses


@pytest.fixture(scope="module")
def alone(sheet: Any) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """The reading done in this process only."""
    batches, reading = read(*sheet, helpers=0)
    assert reading.helped == 0
    return batches, findings(reading)


def test_helpers_give_the_batches_warnings_and_problems_of_one_process(
    sheet: Any, alone: Any
) -> None:
    tabs, blocks = sheet
    batches, reading = read(tabs, paced(blocks), helpers=1, convert_here=1_000)
    assert reading.helped > RESPONSE  # more than a response's rows went to the helper
    assert (batches, findings(reading)) == alone
    rows = [row for batch in batches for row in batch[3] if row is not None]
    assert len(rows) > 15_000 and all(row[3] for row in rows)  # every one has its digest
    _, warnings, problems = findings(reading)
    assert len(warnings) > 50 and len(problems) > 150  # the spoilt rows were found


def test_trusted_rows_and_a_selective_sync_are_sorted_the_same_by_helpers(
    sheet: Any, alone: Any
) -> None:
    tabs, blocks = sheet
    # The table holds every other listing as the sheet has it: those rows are trusted.
    known: dict[str | None, dict[str, str]] = {}
    for tab, _rows, numbers, valid in alone[0]:
        for number, row in zip(numbers, valid, strict=True):
            if row is not None and int(number[-1], 36) % 2:
                known.setdefault(tab, {})[number] = row[3]  # its source digest
    only = frozenset(n for batch in alone[0] for n in batch[2][::3])
    for settings in ({"known": known}, {"known": known, "only": only}, {"only": only}):
        expected = read(tabs, blocks, helpers=0, **settings)
        got = read(tabs, paced(blocks), helpers=2, convert_here=0, **settings)
        assert got[1].helped > 0
        assert (got[0], findings(got[1])) == (expected[0], findings(expected[1]))
        trusted = sum(v is None for batch in got[0] for v in batch[3])
        assert (trusted > 2_000) == ("known" in settings)  # trusted, not validated


def unparsed(
    blocks: list[tuple[int, SheetBlock]], shown: Callable[[list[list[Any]]], None] | None = None
) -> list[tuple[int, SheetBlock]]:
    """The blocks but the first as the Sheets reader hands on a large tab's chunks:
    response bodies, not parsed (``shown``: what asking Google for shown values does)."""
    import orjson

    from listing_sync.sheets import RawChunk

    def nothing(rows: list[list[Any]]) -> None:
        raise AssertionError("shown values asked for with nothing to show")

    out = blocks[:1]
    for index, block in blocks[1:]:
        body = orjson.dumps({"range": "x", "majorDimension": "ROWS", "values": block.rows})
        check = frozenset({12}) if shown and index == 0 else frozenset()  # notes, tab 1
        raw = RawChunk(body, check, shown or nothing, len(block.rows))
        out.append((index, SheetBlock(block.start, [], raw)))
    return out


def test_responses_parsed_by_a_helper_read_as_in_one_process(sheet: Any, alone: Any) -> None:
    """Whole responses go to the helper unparsed; the batches, warnings and problems are
    those of one process, and the main process never parsed them."""
    tabs, blocks = sheet
    batches, reading = read(tabs, paced(unparsed(blocks)), helpers=1)
    assert reading.helped > RESPONSE  # more than a response's rows: parsed by the helper
    assert (batches, findings(reading)) == alone


def test_responses_of_a_re_sync_are_trusted_by_the_helper(sheet: Any, alone: Any) -> None:
    """Nothing changed: the helper parses and digests; what comes back is trusted rows."""
    tabs, blocks = sheet
    known: dict[str | None, dict[str, str]] = {}
    for tab, _rows, numbers, valid in alone[0]:
        for number, row in zip(numbers, valid, strict=True):
            if row is not None:
                known.setdefault(tab, {})[number] = row[3]
    expected = read(tabs, blocks, helpers=0, known=known)
    got = read(tabs, paced(unparsed(blocks)), helpers=1, known=known)
    assert got[1].helped > RESPONSE
    assert (got[0], findings(got[1])) == (expected[0], findings(expected[1]))
    assert all(v is None for batch in got[0][1:] for v in batch[3] if batch[0] == "一覧")


def test_a_response_with_a_number_to_show_is_handed_back(sheet: Any, alone: Any) -> None:
    """A number in a column read as shown (a date in the notes): the helper hands the
    response back, this process parses it and asks for the shown values, as for any chunk."""
    tabs, blocks = sheet
    asked: list[int] = []

    def shown(rows: list[list[Any]]) -> None:  # as SheetsReader._show: asks only if needed
        if not number_columns(rows, {12}):
            return
        asked.append(len(rows))
        for cells in rows:
            if len(cells) > 12 and isinstance(cells[12], int | float):
                cells[12] = "2025/01/09"

    spoilt = [(i, SheetBlock(b.start, [list(r) for r in b.rows])) for i, b in blocks]
    spoilt[3][1].rows[5][12] = 45666  # a date serial typed into notes, in one response
    expected = [(i, SheetBlock(b.start, [list(r) for r in b.rows])) for i, b in spoilt]
    shown(expected[3][1].rows)
    asked.clear()
    want = read(tabs, expected, helpers=0)
    got = read(tabs, paced(unparsed(spoilt, shown)), helpers=1)
    with_numbers = [b for i, b in spoilt[1:] if i == 0 and number_columns(b.rows, {12})]
    assert spoilt[3][1] in with_numbers
    assert [len(b.rows) for b in with_numbers] == asked  # those responses only
    assert (got[0], findings(got[1])) == (want[0], findings(want[1]))


def test_a_helper_that_dies_mid_read_changes_nothing(
    sheet: Any, alone: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = 0
    send = convert.Helper.send

    def send_then_die(self: convert.Helper, message: object) -> bool:
        nonlocal sends
        sent = send(self, message)
        sends += 1
        if sends == 3:  # the shapes, a batch, then this one: killed with it unanswered
            self.process.kill()
            self.process.wait()
            killed.append(self)
        return sent

    killed: list[convert.Helper] = []
    monkeypatch.setattr(convert.Helper, "send", send_then_die)
    batches, reading = read(*sheet, helpers=1, convert_here=0)
    assert len(killed) == 1 and killed[0].broken
    assert (batches, findings(reading)) == alone


def test_a_helper_that_cannot_start_changes_nothing(
    sheet: Any, alone: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(convert.subprocess, "Popen", refuse)
    batches, reading = read(*sheet, helpers=2, convert_here=0)
    assert reading.helped == 0
    assert (batches, findings(reading)) == alone


def test_a_small_reading_starts_no_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(convert, "Helper", lambda shapes: started.append(shapes))
    tabs, blocks = two_tabs(2_000)
    batches, reading = read(tabs, blocks, helpers=3)  # CONVERT_HERE rows: all done here
    assert [] == started and 0 == reading.helped
    assert len(batches) >= 2_000 // READ_BATCH


@pytest.fixture
def helper(sheet: Any) -> Iterator[convert.Helper]:
    tabs = sheet[0]
    shapes = [convert.TabShape(t.header_map, LISTINGS, frozenset(), {}, None) for t in tabs]
    started = convert.Helper(shapes)
    deadline = time.monotonic() + 20
    while not started.usable():
        assert time.monotonic() < deadline and not started.broken, "the helper never got ready"
        time.sleep(0.01)
    yield started
    started.close()


def test_a_helper_ignores_signals_and_answers_what_this_process_would(
    helper: convert.Helper, sheet: Any
) -> None:
    tabs, blocks = sheet
    rows = blocks[0][1].rows[:500]
    for signum in (signal.SIGTERM, signal.SIGINT):  # the main process handles them
        os.kill(helper.process.pid, signum)
    helper.expect()
    assert helper.send((0, rows))
    answer = helper.receive()
    shape = convert.TabShape(tabs[0].header_map, LISTINGS, frozenset(), {}, None)
    assert answer == convert.Converter(shape)(rows)
    assert helper.process.poll() is None


def test_a_helper_exits_when_its_input_closes(helper: convert.Helper) -> None:
    process = helper.process
    # A session of its own: a terminal's Ctrl-C goes to the CLI, which stops it.
    assert os.getsid(process.pid) == process.pid
    helper.close()
    assert 0 == process.returncode


def test_a_helper_whose_parent_is_gone_exits() -> None:
    """The CLI killed by SIGKILL leaves no helper behind: its input ends, it exits."""
    script = (
        "import sys, time; from listing_sync.pipeline import convert; "
        "h = convert.Helper([]); print(h.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the helper outlived its parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("100000 100000\n", 1), ("250000 100000\n", 2), ("junk", None)],
)
def test_cores_keeps_within_the_cgroup_quota(
    tmp_path: Any, cpu_max: str, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert convert.cores(str(path)) == (affinity if expected is None else min(affinity, expected))
    assert convert.cores(str(tmp_path / "absent")) == affinity


def test_sort_response_hands_back_a_number_to_show_and_keeps_only_what_is_needed(
    sheet: Any,
) -> None:
    """In the helper: a number in a column to show hands the response back; otherwise
    each batch comes with only its careful rows' cells and its rows-to-validate's digests."""
    import orjson

    tabs, blocks = sheet
    shape = convert.TabShape(tabs[0].header_map, LISTINGS, frozenset(), {}, None)
    converter = convert.Converter(shape)
    rows = [list(r) for r in blocks[1][1].rows[:2500]]
    body = orjson.dumps({"values": rows})
    parts = convert.sort_response(converter, convert.Response(0, body, frozenset({12})))
    assert isinstance(parts, list) and [1000, 1000, 500] == [p.size for p in parts]
    for at, part in zip((0, 1000, 2000), parts, strict=True):
        whole = converter(rows[at : at + part.size])
        assert whole.numbers == part.sorted.numbers and whole.bodies == part.sorted.bodies
        assert {i: whole.digests[i] for i in whole.todo} == part.sorted.digests
        careful = [whole.todo[k] for k, b in enumerate(whole.bodies) if b is None]
        assert careful and sorted(part.careful) == careful
    rows[1700][12] = 45666
    spoilt = orjson.dumps({"values": rows})
    assert convert.HANDED_BACK == convert.sort_response(
        converter, convert.Response(0, spoilt, frozenset({12}))
    )


def test_early_helpers_are_taken_over_by_the_reading(sheet: Any, alone: Any) -> None:
    """A helper started before the shapes were known (the table said the sheet is large)
    gets them when the reading begins, and reads as the one process does."""
    tabs, blocks = sheet
    early = convert.Early()
    early.start(1)
    [process] = [h.process for h in early._helpers]
    reading = SheetReading(
        tabs=tabs, blocks=paced(unparsed(blocks)), progress=NoProgress(), helpers=1, early=early
    )
    batches = [flat(batch) for batch in reading.batches()]
    assert reading.helped > RESPONSE
    assert (batches, findings(reading)) == alone
    assert [] == early.take() and process.returncode is not None  # ended with the reading


def test_early_helpers_not_taken_are_ended_and_none_start_after() -> None:
    """A run that ends before reading its sheet leaves no early helper behind."""
    early = convert.Early()
    early.start(1)
    [helper] = early._helpers
    early.close()
    assert helper.process.returncode is not None
    early.start(1)
    assert [] == early.take()
