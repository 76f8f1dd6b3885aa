"""How the Sheets client reads a response body, and finds numbers in text columns."""

from __future__ import annotations

import json

from listing_sync.sheets import _json_model, _number_columns


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


def test_number_columns_ignore_flags_text_and_short_rows() -> None:
    chunk: list[list[object]] = [["A", True, "x"], ["B"], ["C", False, 3.5, 7]]
    assert _number_columns(chunk, {0, 1, 2, 3, 9}) == [2, 3]
    assert _number_columns(chunk, set()) == []
    assert _number_columns([], {0}) == []
