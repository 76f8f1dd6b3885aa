"""Keep the benchmark working: run it at a tiny size on the session's stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import LocalStack

REPO = Path(__file__).resolve().parent.parent


def test_bench_runs_at_a_tiny_size(
    clean_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark measures all eight runs at 200 listings and writes both tables."""
    monkeypatch.syspath_prepend(str(REPO))
    from bench.runner import Options, run

    options = Options(
        sizes=[200],
        reps=1,
        help_runs=1,
        results_dir=tmp_path / "results",
        workdir=tmp_path / "work",
        log=lambda line: None,
    )
    result, md, js = run(options, stack=clean_stack)

    measurements = result["results"]["200"]["measurements"]
    assert [
        "cold",
        "nochange",
        "changed",
        "numbers",
        "rest_floor",
        "rest_columns",
        "psql_copy",
        "postgrest_py",
    ] == list(measurements)
    assert [200, 0, 2, 100] == [
        measurements[k]["rows_written"] for k in ("cold", "nochange", "changed", "numbers")
    ]
    assert 1.0 == measurements["rest_floor"]["ratio_to_rest_floor"]
    assert result == json.loads(js.read_text(encoding="utf-8"))
    assert md.read_text(encoding="utf-8").startswith("# listing-sync benchmark, ")
    assert [] == clean_stack.sql("select 1 from public.property_listings limit 1")
