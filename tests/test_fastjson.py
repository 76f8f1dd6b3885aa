"""fastjson reads what the standard library reads, integers beyond 64 bits included."""

from __future__ import annotations

import json

import pytest

from listing_sync import fastjson


@pytest.mark.parametrize(
    "text",
    [
        '{"values":[["TK-1",35800000,120.5,true,null,"円"]]}',
        "[123456789012345678901234567890, 1.5]",  # orjson alone: a float
        '[{"k":"A","c":-9223372036854775809}]',
        '["a 19-digit run in text: 1234567890123456789"]',
        "[1e300, -0.0, 0]",
        "123456789012345678901234567890",  # a number alone
        '{"a":\n  -12345678901234567890123, "b": [1,\t12345678901234567890123]}',
    ],
)
def test_the_same_values_as_the_standard_library(text: str) -> None:
    value = fastjson.loads(text.encode())
    assert value == json.loads(text)
    assert repr(value) == repr(json.loads(text))  # 1 and 1.0 differ here


def test_digits_in_strings_keep_the_fast_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of hex digests has a run of 19 digits every few hundred rows: in a string,
    where no number can be, so orjson reads it; a number of 19 digits still goes to json."""
    slow: list[bytes] = []
    real = json.loads
    monkeypatch.setattr(fastjson.json, "loads", lambda raw: slow.append(raw) or real(raw))
    page = b'[{"k":"P1","s":"ab1234567890123456789012cd"},{"k":"1234567890123456789012"}]'
    assert fastjson.loads(page) == real(page)
    assert slow == []
    number = b'[{"k":"P1","c":1234567890123456789012}]'
    assert fastjson.loads(number) == [{"k": "P1", "c": 1234567890123456789012}]
    assert slow == [number]


def test_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        fastjson.loads(b"<html>502 Bad Gateway</html>")


def test_postgrest_pages_keep_big_numbers_exact() -> None:
    import httpx

    from listing_sync.postgrest import _json

    response = httpx.Response(200, content=b'[{"k":"A","land_area_m2":12345678901234567890123}]')
    assert _json(response) == [{"k": "A", "land_area_m2": 12345678901234567890123}]
