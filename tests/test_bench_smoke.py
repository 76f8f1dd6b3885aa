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


def test_bench_distance_mode_runs_at_a_tiny_size(
    clean_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The distance mode measures the tool and the baselines through proxies at RTT 5 ms."""
    monkeypatch.syspath_prepend(str(REPO))
    from bench.runner import Options, run

    options = Options(
        sizes=[200],
        reps=1,
        results_dir=tmp_path / "results",
        workdir=tmp_path / "work",
        log=lambda line: None,
        rtts_ms=[5],
    )
    result, md, js = run(options, stack=clean_stack)

    block = result["results"]["200"]["conditions"]["rtt5"]
    measurements = block["measurements"]
    assert [
        "cold",
        "nochange",
        "changed",
        "cold_defaults",
        "writer_seq",
        "writer_concurrent",
        "seed_shape",
        "reads_parallel",
    ] == list(measurements)
    assert [200, 0, 2, 200] == [
        measurements[k]["rows_written"] for k in ("cold", "nochange", "changed", "cold_defaults")
    ]
    # Everything went through the proxies: a cold run uploads the rows, a no-change run
    # downloads the sheet and the hashes and uploads no rows.
    assert measurements["cold"]["postgrest_up_mb"] > measurements["nochange"]["postgrest_up_mb"]
    assert measurements["nochange"]["sheets_down_mb"] > 0
    assert measurements["reads_parallel"]["postgrest_down_mb"] > 0
    # Each at least the 3 round trips of one new connection.
    assert [] == [k for k, e in measurements.items() if e["min_s"] < 0.014]
    assert 4 == len(block["ratios"])
    cold = measurements["cold"]["median_s"]
    floor = (
        measurements["reads_parallel"]["median_s"] + measurements["writer_concurrent"]["median_s"]
    )
    assert round(cold / floor, 3) == block["ratios"][0]["value"]
    assert result == json.loads(js.read_text(encoding="utf-8"))
    assert js.name.endswith("_n200_rtt5.json")
    assert md.read_text(encoding="utf-8").startswith("# listing-sync benchmark at a distance, ")
    assert [] == clean_stack.sql("select 1 from public.property_listings limit 1")


def test_scale_runs_at_a_tiny_size(
    clean_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench.scale syncs its 20-column sheet cold and again, checking the counts."""
    monkeypatch.syspath_prepend(str(REPO))
    from bench.scale import measure, render

    result = measure(clean_stack, 300, tmp_path)

    assert (result["listings"], result["columns"]) == (300, 20)
    assert set(result["runs"]) == {"cold", "nochange"}
    assert all(run["seconds"] > 0 and run["peak_rss_mb"] > 0 for run in result["runs"].values())
    assert "300 listings x 20 columns = 6,000 cells" in render(result)


def test_bench_rows_measures_the_three_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m bench.rows` at 2,000 listings: each pass timed, both tables written."""
    monkeypatch.syspath_prepend(str(REPO))
    from bench import rows

    assert 0 == rows.main(["--listings", "2000", "--reps", "1", "--results-dir", str(tmp_path)])
    [js] = tmp_path.glob("*_rows_n2000_*.json")
    result = json.loads(js.read_text(encoding="utf-8"))
    assert ["cold", "cold_json", "trusted"] == list(result["passes"])
    assert all(p["us_per_row"] > 0 for p in result["passes"].values())
    md = js.with_suffix(".md").read_text(encoding="utf-8")
    assert md.startswith("# listing-sync: CPU a sheet row costs, ")
