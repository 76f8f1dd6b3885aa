"""``python -m bench.scale``: a sheet at Google's size limit, synced cold and again.

Google caps a spreadsheet at 10 million cells: 500,000 listings of 20 columns (the
benchmark's 17 and three more kept in ``extra``). This starts its own local stack,
loads that sheet (not timed), then runs the real CLI twice with the benchmark's tuned
settings: into an empty table (cold) and again with nothing changed. Each run must
write and skip exactly the rows the step implies. Reported: wall time and the CLI's
own peak RSS, and the no-change run as a fraction of the cold one (issue 13 asks for
under 800 MB and under 0.25).

Example: python -m bench.scale --listings 500000 --results-dir bench/results
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import LocalStack

from . import data
from .measure import compile_package, machine, machine_line, run_child
from .runner import BATCH_SIZE, RATE_LIMIT, TAB, _check, _commit, cli_command

# Three more columns for 20 in all, kept in extra: a phone number, a URL, a remark.
MORE_HEADERS = ["電話番号", "URL", "メモ"]


def sheet(n: int) -> list[list[Any]]:
    """Return header + ``n`` rows of the benchmark's 17 columns and three more."""
    rows = data.sheet(n)
    rows[0] = [*rows[0], *MORE_HEADERS]
    for i, row in enumerate(rows[1:]):
        rng = random.Random(i)
        row.extend(
            [
                f"03-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
                f"https://example.jp/bukken/{data.number_of(i)}",
                rng.choice(["", "要確認", "写真差し替え予定", "内見可"]),
            ]
        )
    return rows


def measure(stack: LocalStack, n: int, work: Path) -> dict[str, Any]:
    """Load the sheet of ``n`` listings on ``stack``, run cold and again; return the result."""
    began = machine()
    stack.truncate()
    stack.clear_state_dir()
    rows = sheet(n)
    stack.sheets.set_sheet(stack.spreadsheet_id, TAB, rows)
    del rows
    env = stack.env(
        SYNC_MAPPING=str(data.write_mapping(work / "mapping.toml")),
        SYNC_BATCH_SIZE=str(BATCH_SIZE),
        SYNC_RATE_LIMIT=str(RATE_LIMIT),
        # The run's budget is sized for nightly runs of ordinary sheets.
        SYNC_RUN_TIMEOUT="3600",
    )
    runs: dict[str, dict[str, float]] = {}
    for name, success, skipped in (("cold", n, 0), ("nochange", 0, n)):
        run = run_child([*cli_command(), "sync", "all", "--json"], env=env)
        _check(run, f"{name} at {n}", success=success, skipped=skipped)
        runs[name] = {"seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb}
        print(f"{name:9} {run.seconds:8.2f} s {run.peak_rss_mb:7.1f} MB", flush=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {**began, "load_average_end": machine()["load_average"]},
        "listings": n,
        "columns": len(data.HEADERS) + len(MORE_HEADERS),
        "runs": runs,
        "nochange_fraction_of_cold": runs["nochange"]["seconds"] / runs["cold"]["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--listings", type=int, default=500_000)
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    compile_package()
    with tempfile.TemporaryDirectory(prefix="listing-sync-scale-") as tmp:
        work = Path(tmp)
        with LocalStack(work / "stack") as stack:
            result = measure(stack, args.listings, work)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    m = result["machine"]
    name = f"{result['date'][:10]}_scale_n{args.listings}_{m['cores']}c"
    (args.results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results_dir / f"{name}.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    runs = result["runs"]
    cells = result["listings"] * result["columns"]
    lines = [
        f"# listing-sync at Google's size limit, {result['date']}",
        "",
        machine_line(m, m["load_average_end"], platform=False),
        f"Code: commit {result['commit']}. Loopback (no added distance); "
        f"SYNC_BATCH_SIZE={BATCH_SIZE}, SYNC_RATE_LIMIT={RATE_LIMIT}; one run each.",
        "",
        f"{result['listings']:,} listings x {result['columns']} columns = {cells:,} cells.",
        "",
        "| run | seconds | peak RSS MB |",
        "|---|---:|---:|",
        *(
            f"| `sync all`, {label} | {runs[key]['seconds']:.1f} | {runs[key]['peak_rss_mb']:.0f} |"
            for key, label in (("cold", "empty table (cold)"), ("nochange", "nothing changed"))
        ),
        "",
        f"No change / cold: {result['nochange_fraction_of_cold']:.2f} (target < 0.25); "
        f"peak RSS target < 800 MB.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
