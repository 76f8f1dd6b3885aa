"""Run every measurement for each size and write the results table (markdown + JSON)."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import LocalStack

from . import baselines, data
from .measure import (
    ChildRun,
    compile_package,
    machine,
    machine_line,
    median,
    run_child,
    slug,
    versions,
)

TAB = "物件一覧"
CHANGED_FRACTION = 0.01
SELECTED = 100
# Throughput settings for the run (the defaults are throttles by design).
BATCH_SIZE = 1000
RATE_LIMIT = 10_000  # requests/s: effectively unthrottled

LABELS = {
    "cold": "1. `sync all`, empty table (cold)",
    "nochange": "2. `sync all`, nothing changed",
    "changed": "3. `sync all`, 1% of rows changed",
    "numbers": "4. `sync numbers --force` (100 numbers)",
    "rest_floor": "(a) REST floor: httpx loop, 1000-row POSTs",
    "rest_columns": "(a') the same loop with `?columns=` (for reference)",
    "psql_copy": "(b) database limit: psql COPY + INSERT ON CONFLICT",
    "postgrest_py": "(c) `postgrest` client, 1000-row upserts",
}
TOOL = ("cold", "nochange", "changed", "numbers")


@dataclass
class Options:
    sizes: Sequence[int] = (10_000, 100_000)
    reps: int = 3
    reps_large: int | None = None  # repetitions for sizes >= 100,000 (default: reps)
    help_runs: int = 10
    results_dir: Path = Path(__file__).resolve().parent / "results"
    workdir: Path | None = None  # default: a temporary directory, removed afterwards
    # Distance mode (bench/distance.py) when given: round trips in ms, each with every
    # bandwidth cap in Mbit/s (None: no cap).
    rtts_ms: Sequence[float] = ()
    bandwidths_mbit: Sequence[float | None] = (None,)
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))


class BenchError(RuntimeError):
    """A measured run did not do what it was meant to do; its numbers would lie."""


def cli_command() -> list[str]:
    """Return the real installed ``listing-sync`` entry point (or ``python -m``)."""
    script = Path(sys.executable).parent / "listing-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "listing_sync"]


def _check(run: ChildRun, what: str, *, success: int, skipped: int | None) -> None:
    if run.returncode != 0:
        raise BenchError(f"{what}: exit {run.returncode}\n{run.stderr[-2000:]}{run.stdout[-500:]}")
    report = json.loads(run.stdout)
    if report["success"] != success or (skipped is not None and report["skipped"] != skipped):
        raise BenchError(
            f"{what}: wrote {report['success']} and skipped {report['skipped']}, "
            f"expected {success} and {skipped}"
        )


def _count(stack: LocalStack) -> int:
    return int(stack.sql("select count(*) from public.property_listings")[0][0] or 0)


class Bench:
    """The measurements of one size on one running stack."""

    def __init__(self, stack: LocalStack, n: int, workdir: Path, log: Callable[[str], None]):
        self.stack = stack
        self.n = n
        self.log = log
        self.cli = cli_command()
        mapping_file = data.write_mapping(workdir / "mapping.toml")
        self.env = stack.env(
            SYNC_MAPPING=str(mapping_file),
            SYNC_BATCH_SIZE=str(BATCH_SIZE),
            SYNC_RATE_LIMIT=str(RATE_LIMIT),
        )
        self.rows = data.sheet(n)
        self.table_rows = list(
            data.table_rows(
                self.rows,
                sync_id=str(uuid.uuid4()),
                synced_at=datetime.now(UTC).isoformat(),
                tab=TAB,
            )
        )
        self.csv = baselines.write_csv(self.table_rows, workdir / f"rows-{n}.csv")
        step = max(1, n // SELECTED)
        self.numbers = [data.number_of(i) for i in range(0, n, step)][:SELECTED]
        self.samples: dict[str, list[dict[str, float]]] = {k: [] for k in LABELS}

    def _reset(self, rows: list[list[Any]]) -> None:
        self.stack.truncate()
        self.stack.clear_state_dir()
        self.stack.sheets.reset()
        self.stack.sheets.set_sheet(self.stack.spreadsheet_id, TAB, rows)

    def _tool(self, name: str, args: Sequence[str], *, success: int, skipped: int | None) -> None:
        run = run_child([*self.cli, *args, "--json"], env=self.env)
        _check(run, f"{name} at {self.n}", success=success, skipped=skipped)
        self.samples[name].append(
            {"seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb, "written": success}
        )
        self.log(f"  {name:<13} {run.seconds:8.3f} s  {run.peak_rss_mb:6.1f} MB")

    def _baseline(self, name: str, fn: Callable[[], float]) -> None:
        self.stack.truncate()
        seconds = fn()
        if _count(self.stack) != self.n:
            raise BenchError(f"{name} at {self.n}: table has {_count(self.stack)} rows")
        self.samples[name].append({"seconds": seconds, "written": self.n})
        self.log(f"  {name:<13} {seconds:8.3f} s")

    def warm_up(self) -> None:
        """One untimed pass of (a): PostgREST's pool and the table's first fill are not measured."""
        self.stack.truncate()
        baselines.rest_floor(self.stack, self.table_rows)
        self.stack.truncate()

    def repetition(self, rep: int) -> None:
        """One round of everything; baselines and tool runs interleave to share the noise."""
        self._baseline("rest_floor", lambda: baselines.rest_floor(self.stack, self.table_rows))
        self._baseline(
            "rest_columns",
            lambda: baselines.rest_floor(self.stack, self.table_rows, columns=True),
        )
        self._baseline("psql_copy", lambda: baselines.psql_copy(self.stack, self.csv))
        self._baseline("postgrest_py", lambda: baselines.postgrest_py(self.stack, self.table_rows))

        n = self.n
        self._reset(self.rows)
        self._tool("cold", ["sync", "all"], success=n, skipped=0)
        if _count(self.stack) != n:
            raise BenchError(f"cold at {n}: table has {_count(self.stack)} rows")
        self._tool("nochange", ["sync", "all"], success=0, skipped=n)

        changed = data.changed_indices(n, CHANGED_FRACTION, seed=rep)
        self.stack.sheets.set_sheet(self.stack.spreadsheet_id, TAB, data.sheet(n, changed=changed))
        gc.collect()
        self._tool("changed", ["sync", "all"], success=len(changed), skipped=n - len(changed))
        self._tool(
            # --force: the 100 listings are unchanged, and the measurement is re-writing them.
            "numbers",
            ["sync", "numbers", "--force", *self.numbers],
            success=len(self.numbers),
            skipped=None,
        )

    def summary(self) -> dict[str, Any]:
        """Medians, rows/s and ratios to the REST floor for every measurement."""
        floor = median([s["seconds"] for s in self.samples["rest_floor"]])
        out: dict[str, Any] = {}
        for name, samples in self.samples.items():
            seconds = [s["seconds"] for s in samples]
            mid = median(seconds)
            rows = len(self.numbers) if name == "numbers" else self.n
            entry: dict[str, Any] = {
                "label": LABELS[name],
                "runs": len(seconds),
                "median_s": round(mid, 4),
                "min_s": round(min(seconds), 4),
                "max_s": round(max(seconds), 4),
                "samples_s": [round(s, 4) for s in seconds],
                "rows": rows,
                "rows_written": int(samples[0]["written"]),
                "rows_per_s": round(rows / mid),
                "ratio_to_rest_floor": round(mid / floor, 3),
            }
            if name in TOOL:
                entry["peak_rss_mb"] = round(max(s["peak_rss_mb"] for s in samples), 1)
            out[name] = entry
        return out


def targets(n: int, m: dict[str, Any], help_s: float) -> list[dict[str, Any]]:
    """Evaluate the issue's targets on one size's summary."""
    cold = m["cold"]["median_s"]
    rows = [
        ("cold full sync <= 1.5x REST floor (a)", m["cold"]["ratio_to_rest_floor"], 1.5, "x (a)"),
        ("no-change re-sync <= 0.25x cold", m["nochange"]["median_s"] / cold, 0.25, "x cold"),
        ("1% changed <= 0.3x cold", m["changed"]["median_s"] / cold, 0.3, "x cold"),
        (
            "peak RSS < 250 MB",
            max(m[k]["peak_rss_mb"] for k in TOOL),
            250.0,
            "MB",
        ),
        ("`listing-sync --help` < 0.3 s", help_s, 0.3, "s"),
    ]
    return [
        {
            "size": n,
            "target": name,
            "measured": round(value, 3),
            "limit": limit,
            "unit": unit,
            "met": value < limit if unit in ("MB", "s") else value <= limit,
        }
        for name, value, limit, unit in rows
    ]


def measure_help(runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        run = run_child([*cli_command(), "--help"])
        if run.returncode != 0:
            raise BenchError(f"--help: exit {run.returncode}: {run.stderr}")
        samples.append(run.seconds)
    mid = median(samples)
    log(f"--help: median {mid:.3f} s over {runs} runs")
    return {"runs": runs, "median_s": round(mid, 4), "samples_s": [round(s, 4) for s in samples]}


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# listing-sync benchmark, {result['date']}",
        "",
        machine_line(m, result["load_average_end"]),
        f"Code: commit {result.get('commit', '?')}.",
        f"Stack: {result['versions'].get('postgrest', '?')}, {result['versions']['psql']} "
        "(devstack.LocalStack: fsync off), local Sheets v4 server in the benchmark process.",
        f"Tool settings: SYNC_BATCH_SIZE={result['settings']['SYNC_BATCH_SIZE']}, "
        f"SYNC_RATE_LIMIT={result['settings']['SYNC_RATE_LIMIT']}; each tool run is the real "
        "CLI as a subprocess (interpreter start included) and must write and skip exactly "
        "the expected rows; (a), (a') and (c) run in-process on rows already built in memory; "
        "the table is emptied before every cold run and every baseline.",
        "",
    ]
    for size in result["sizes"]:
        block = result["results"][str(size)]
        lines += [
            f"## {size:,} listings ({block['reps']} repetitions, medians)",
            "",
            "| measurement | wall s (median) | min-max s | rows/s | x (a) | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for entry in block["measurements"].values():
            rss = f"{entry['peak_rss_mb']:.0f}" if "peak_rss_mb" in entry else "-"
            lines.append(
                f"| {entry['label']} | {entry['median_s']:.3f} | "
                f"{entry['min_s']:.3f}-{entry['max_s']:.3f} | {entry['rows_per_s']:,} | "
                f"{entry['ratio_to_rest_floor']:.2f} | {rss} |"
            )
        scope = "" if size >= 100_000 else " (the targets are set at 100,000; for reference)"
        lines += ["", f"Targets{scope}:", "", "| target | measured | met |", "|---|---:|---|"]
        for t in block["targets"]:
            lines.append(
                f"| {t['target']} | {t['measured']:g} {t['unit']} | "
                f"{'yes' if t['met'] else '**no**'} |"
            )
        lines.append("")
    h = result["help"]
    lines += [
        f"`listing-sync --help`: median {h['median_s']:.3f} s over {h['runs']} runs.",
        "",
        "rows/s: sheet rows per second for 1-3 and the baselines, numbers per second for 4. "
        "Peak RSS is the CLI process's own high-water mark (ru_maxrss, taken by a small "
        "wrapper process), the largest over the repetitions.",
        "",
    ]
    return "\n".join(lines)


def write_results(
    result: dict[str, Any],
    results_dir: Path,
    render: Callable[[dict[str, Any]], str] = render_markdown,
    suffix: str = "",
) -> tuple[Path, Path]:
    m = result["machine"]
    sizes = "-".join(str(s) for s in result["sizes"])
    name = (
        f"{result['date'][:10]}_{slug(m['cpu'])}_{m['cores']}c_{round(m['ram_gb'])}gb"
        f"_py{m['python']}_n{sizes}{suffix}"
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    md = results_dir / f"{name}.md"
    js = results_dir / f"{name}.json"
    md.write_text(render(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js


def run(options: Options, stack: LocalStack | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Measure every size (starting a LocalStack unless given one); write and return results."""
    compile_package()
    own_dir = options.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="listing-sync-bench-")) if own_dir else options.workdir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if stack is None:
            options.log(f"starting the local stack in {workdir}")
            with LocalStack(workdir / "stack") as own:
                return _run(options, own, workdir)
        return _run(options, stack, workdir)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def _commit() -> str:
    """Return the git commit measured, marked "+changes" if listing_sync/ has local edits."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "listing_sync"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + (" +changes" if dirty else "")


def _run(options: Options, stack: LocalStack, workdir: Path) -> tuple[dict[str, Any], Path, Path]:
    from devstack.postgres import find_pg_bin
    from devstack.postgrest import find_postgrest_bin

    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "versions": versions(str(find_postgrest_bin()), find_pg_bin("psql")),
        "settings": {"SYNC_BATCH_SIZE": BATCH_SIZE, "SYNC_RATE_LIMIT": RATE_LIMIT},
        "sizes": list(options.sizes),
        "commit": _commit(),
        "results": {},
    }
    if options.rtts_ms:
        return _run_distance(options, stack, workdir, result)
    result["help"] = measure_help(options.help_runs, options.log)
    for n in options.sizes:
        reps = options.reps_large if (n >= 100_000 and options.reps_large) else options.reps
        options.log(f"{n:,} listings: preparing data (not timed)")
        bench = Bench(stack, n, workdir, options.log)
        bench.warm_up()
        gc.collect()
        gc.freeze()  # the in-process baselines and the Sheets server skip our big data
        try:
            for rep in range(1, reps + 1):
                options.log(f"{n:,} listings: repetition {rep}/{reps}")
                bench.repetition(rep)
        finally:
            gc.unfreeze()
        measurements = bench.summary()
        result["results"][str(n)] = {
            "reps": reps,
            "measurements": measurements,
            "targets": targets(n, measurements, result["help"]["median_s"]),
        }
        del bench
        gc.collect()
    stack.truncate()
    result["load_average_end"] = machine()["load_average"]
    md, js = write_results(result, options.results_dir)
    options.log(f"wrote {md} and {js}")
    return result, md, js


def _run_distance(
    options: Options, stack: LocalStack, workdir: Path, result: dict[str, Any]
) -> tuple[dict[str, Any], Path, Path]:
    from . import distance

    conds = distance.conditions(options.rtts_ms, options.bandwidths_mbit)
    result["mode"] = "distance"
    result["conditions"] = [{"rtt_ms": c.rtt_ms, "bandwidth_mbit": c.bandwidth_mbit} for c in conds]
    for n in options.sizes:
        reps = options.reps_large if (n >= 100_000 and options.reps_large) else options.reps
        result["results"][str(n)] = distance.run_size(stack, n, reps, conds, workdir, options.log)
        gc.collect()
    stack.truncate()
    result["load_average_end"] = machine()["load_average"]
    rtts = "-".join(f"{r:g}" for r in options.rtts_ms)
    bws = "-".join("none" if b is None else f"{b:g}" for b in options.bandwidths_mbit)
    suffix = f"_rtt{rtts}" + ("" if bws == "none" else f"_bw{bws}")
    md, js = write_results(result, options.results_dir, distance.render_markdown, suffix)
    options.log(f"wrote {md} and {js}")
    return result, md, js
