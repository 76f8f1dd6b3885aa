"""The distance mode: the tool and its baselines through delaying proxies (bench.netem).

For every round trip (and bandwidth cap) asked for, one pair of proxies stands in front
of PostgREST (POSTGREST_URL) and of the local Sheets server (SYNC_SHEETS_API_ENDPOINT);
the Google token endpoint stays direct. Each repetition measures, through them:

- the CLI: cold (tuned), no change, 1% changed, and cold with the default settings;
- the ideal sequential writer, the ideal concurrent writer, the seed's shape;
- the two reads in parallel: the sheet through the real Google client in the tool's
  chunks, and the table's keys and hashes in keyset pages.

and reports the ratios issue 13's targets are stated in.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devstack import LocalStack

from . import baselines, data
from .measure import machine_line, median, run_child
from .netem import Netem
from .runner import CHANGED_FRACTION, TAB, Bench, BenchError, _check, _count

LABELS = {
    "cold": "`sync all`, empty table (cold), tuned",
    "nochange": "`sync all`, nothing changed, tuned",
    "changed": "`sync all`, 1% of rows changed, tuned",
    "cold_defaults": "`sync all`, empty table (cold), default settings",
    "writer_seq": "ideal sequential writer: 1000-row POSTs, one after another",
    "writer_concurrent": "ideal concurrent writer: 5 concurrent 1000-row POSTs",
    "seed_shape": "the seed's shape: 5 concurrent 100-row POSTs",
    "reads_parallel": "the sheet and the table's hashes read in parallel",
}
TOOL = ("cold", "nochange", "changed", "cold_defaults")
# (name, writes per request, requests in flight)
WRITERS = (("writer_seq", 1000, 1), ("writer_concurrent", 1000, 5), ("seed_shape", 100, 5))


@dataclass(frozen=True)
class Condition:
    """One network path: round trip in ms and an optional shared bandwidth cap in Mbit/s."""

    rtt_ms: float
    bandwidth_mbit: float | None = None

    @property
    def key(self) -> str:
        bw = "" if self.bandwidth_mbit is None else f"_bw{self.bandwidth_mbit:g}"
        return f"rtt{self.rtt_ms:g}{bw}"

    @property
    def label(self) -> str:
        bw = "" if self.bandwidth_mbit is None else f", {self.bandwidth_mbit:g} Mbit/s"
        return f"{self.rtt_ms:g} ms{bw}"


def conditions(rtts_ms: Sequence[float], bandwidths: Sequence[float | None]) -> list[Condition]:
    """Every round trip with every bandwidth (None: no cap)."""
    return [Condition(rtt, bw) for bw in bandwidths for rtt in rtts_ms]


class DistanceBench(Bench):
    """The distance measurements of one size on one running stack."""

    def __init__(self, stack: LocalStack, n: int, workdir: Any, log: Callable[[str], None]):
        super().__init__(stack, n, workdir, log)
        self.bodies = {
            size: baselines.encode_batches(self.table_rows, size) for size in {1000, 100}
        }
        self.by_condition: dict[str, dict[str, list[dict[str, float]]]] = {}

    def _record(self, cond: Condition, name: str, sample: dict[str, float]) -> None:
        self.by_condition.setdefault(cond.key, {k: [] for k in LABELS})[name].append(sample)
        rss = f"  {sample['peak_rss_mb']:6.1f} MB" if "peak_rss_mb" in sample else ""
        self.log(f"  {cond.label:<18} {name:<17} {sample['seconds']:8.3f} s{rss}")

    def repetition_at(self, rep: int, cond: Condition) -> None:
        """One round of everything through fresh proxies for ``cond``."""
        stack, n = self.stack, self.n
        with (
            Netem(
                stack.postgrest_url, rtt_ms=cond.rtt_ms, bandwidth_mbit=cond.bandwidth_mbit
            ) as rest,
            Netem(
                stack.sheets.url, rtt_ms=cond.rtt_ms, bandwidth_mbit=cond.bandwidth_mbit
            ) as sheets,
        ):
            proxies = {"postgrest": rest, "sheets": sheets}

            def measured(name: str, fn: Callable[[], dict[str, float]]) -> None:
                before = {p: proxy.traffic() for p, proxy in proxies.items()}
                sample = fn()
                for p, proxy in proxies.items():
                    after = proxy.traffic()
                    for d in ("up", "down"):
                        sample[f"{p}_{d}_mb"] = (after[d] - before[p][d]) / 1e6
                self._record(cond, name, sample)

            key = stack.service_role_key
            for name, size, concurrency in WRITERS:

                def write(
                    name: str = name, size: int = size, concurrency: int = concurrency
                ) -> dict[str, float]:
                    stack.truncate()
                    seconds = baselines.post_bodies(
                        rest.url, key, self.bodies[size], concurrency=concurrency
                    )
                    if _count(stack) != n:
                        raise BenchError(f"{name} at {n}: table has {_count(stack)} rows")
                    return {"seconds": seconds, "written": n}

                measured(name, write)

            # The table now holds the n rows; the sheet gets them too.
            self._reset_sheet(self.rows)
            reader = baselines.SheetValues(sheets.url, stack.key_path, stack.spreadsheet_id, TAB)
            try:

                def read() -> dict[str, float]:
                    seconds, sheet_rows, hashes = baselines.parallel_reads(
                        reader, n + 1, len(data.HEADERS), rest.url, key
                    )
                    if (sheet_rows, hashes) != (n + 1, n):
                        raise BenchError(
                            f"reads_parallel at {n}: {sheet_rows} sheet rows and {hashes} "
                            f"hashes, expected {n + 1} and {n}"
                        )
                    return {"seconds": seconds, "written": 0}

                measured("reads_parallel", read)
            finally:
                reader.close()

            through = {"POSTGREST_URL": rest.url, "SYNC_SHEETS_API_ENDPOINT": sheets.url}
            tuned = {**self.env, **through}
            defaults = {
                k: v for k, v in tuned.items() if k not in ("SYNC_BATCH_SIZE", "SYNC_RATE_LIMIT")
            }

            def tool(
                args: list[str], env: dict[str, str], success: int, skipped: int
            ) -> Callable[[], dict[str, float]]:
                return lambda: self._tool_run(args, env, success=success, skipped=skipped)

            self._reset(self.rows)
            measured("cold", tool(["sync", "all"], tuned, n, 0))
            if _count(stack) != n:
                raise BenchError(f"cold at {n}: table has {_count(stack)} rows")
            measured("nochange", tool(["sync", "all"], tuned, 0, n))
            changed = data.changed_indices(n, CHANGED_FRACTION, seed=rep)
            self._reset_sheet(data.sheet(n, changed=changed))
            gc.collect()
            measured("changed", tool(["sync", "all"], tuned, len(changed), n - len(changed)))
            self._reset(self.rows)
            measured("cold_defaults", tool(["sync", "all"], defaults, n, 0))
            if _count(stack) != n:
                raise BenchError(f"cold_defaults at {n}: table has {_count(stack)} rows")

    def _reset_sheet(self, rows: list[list[Any]]) -> None:
        self.stack.sheets.set_sheet(self.stack.spreadsheet_id, TAB, rows)

    def _tool_run(
        self, args: Sequence[str], env: dict[str, str], *, success: int, skipped: int
    ) -> dict[str, float]:
        run = run_child([*self.cli, *args, "--json"], env=env)
        _check(run, f"{' '.join(args)} at {self.n}", success=success, skipped=skipped)
        return {"seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb, "written": success}

    def distance_summary(self) -> dict[str, Any]:
        """Per condition: medians of every measurement and the ratios of the targets."""
        out: dict[str, Any] = {}
        for cond_key, samples in self.by_condition.items():
            measurements: dict[str, Any] = {}
            for name, runs in samples.items():
                seconds = [s["seconds"] for s in runs]
                mid = median(seconds)
                entry: dict[str, Any] = {
                    "label": LABELS[name],
                    "runs": len(runs),
                    "median_s": round(mid, 4),
                    "min_s": round(min(seconds), 4),
                    "max_s": round(max(seconds), 4),
                    "samples_s": [round(s, 4) for s in seconds],
                    "rows_written": int(runs[0]["written"]),
                    "rows_per_s": round(self.n / mid),
                }
                for field in ("postgrest_up_mb", "postgrest_down_mb", "sheets_down_mb"):
                    entry[field] = round(median([s[field] for s in runs]), 2)
                if name in TOOL:
                    entry["peak_rss_mb"] = round(max(s["peak_rss_mb"] for s in runs), 1)
                measurements[name] = entry
            out[cond_key] = {"measurements": measurements, "ratios": ratios(measurements)}
        return out


# (name, numerator, denominator terms, limit): issue 13's targets, measured in the same run.
READS, WRITER = "reads_parallel", "writer_concurrent"
RATIOS: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("cold / (parallel reads + ideal concurrent writer)", "cold", (READS, WRITER), 1.25),
    ("no change / parallel reads", "nochange", (READS,), 1.25),
    ("1% changed / parallel reads", "changed", (READS,), 1.25),
    ("cold, default settings / ideal concurrent writer", "cold_defaults", (WRITER,), 2.0),
)


def ratios(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate each ratio of the issue's targets on one condition's medians."""
    out = []
    for name, top, bottom, limit in RATIOS:
        value = m[top]["median_s"] / sum(m[b]["median_s"] for b in bottom)
        out.append({"ratio": name, "value": round(value, 3), "limit": limit, "met": value <= limit})
    return out


def render_markdown(result: dict[str, Any]) -> str:
    """The distance results: one table across conditions, then each condition in full."""
    m = result["machine"]
    conds = [Condition(c["rtt_ms"], c["bandwidth_mbit"]) for c in result["conditions"]]
    lines = [
        f"# listing-sync benchmark at a distance, {result['date']}",
        "",
        machine_line(m, result["load_average_end"]),
        f"Code: commit {result.get('commit', '?')}.",
        f"Stack: {result['versions'].get('postgrest', '?')}, {result['versions']['psql']} "
        "(devstack.LocalStack: fsync off), local Sheets v4 server in the benchmark process.",
        "Path: bench.netem proxies in front of PostgREST and the Sheets server (RTT/2 each "
        "way, 2 RTT before a new connection carries data, connections delayed independently, "
        "a bandwidth cap shared per direction); the Google token endpoint is direct.",
        f"Tuned tool runs: SYNC_BATCH_SIZE={result['settings']['SYNC_BATCH_SIZE']}, "
        f"SYNC_RATE_LIMIT={result['settings']['SYNC_RATE_LIMIT']}; default-settings runs set "
        "neither. Every tool run is the real CLI in a subprocess and must write and skip "
        "exactly the expected rows; the writers POST bodies encoded before the clock starts.",
        "",
    ]
    for size in result["sizes"]:
        block = result["results"][str(size)]
        lines += [
            f"## {size:,} listings ({block['reps']} repetitions, medians, seconds)",
            "",
            "| measurement | " + " | ".join(c.label for c in conds) + " |",
            "|---|" + "---:|" * len(conds),
        ]
        for name, label in LABELS.items():
            cells = [
                f"{block['conditions'][c.key]['measurements'][name]['median_s']:.3f}" for c in conds
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "| ratio (target) | " + " | ".join(c.label for c in conds) + " |"]
        lines.append("|---|" + "---:|" * len(conds))
        for i, (name, _, _, limit) in enumerate(RATIOS):
            cells = []
            for c in conds:
                r = block["conditions"][c.key]["ratios"][i]
                cells.append(f"{r['value']:.2f}" + ("" if r["met"] else " **no**"))
            lines.append(f"| {name} (<= {limit:g}) | " + " | ".join(cells) + " |")
        lines.append("")
        for c in conds:
            ms = block["conditions"][c.key]["measurements"]
            lines += [
                f"### {size:,} listings, {c.label}",
                "",
                "| measurement | median s | min-max s | rows/s | PostgREST MB up/down "
                "| Sheets MB down | peak RSS MB |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for e in ms.values():
                rss = f"{e['peak_rss_mb']:.0f}" if "peak_rss_mb" in e else "-"
                lines.append(
                    f"| {e['label']} | {e['median_s']:.3f} | {e['min_s']:.3f}-{e['max_s']:.3f} "
                    f"| {e['rows_per_s']:,} | {e['postgrest_up_mb']:.1f} / "
                    f"{e['postgrest_down_mb']:.1f} | {e['sheets_down_mb']:.1f} | {rss} |"
                )
            lines.append("")
    lines += [
        "Ratios are of medians measured in the same run; issue 13 sets its targets at "
        "100,000 listings (the default-settings one at 60 ms). MB are the bytes the proxies "
        "forwarded (median per run).",
        "",
    ]
    return "\n".join(lines)


def run_size(
    stack: LocalStack,
    n: int,
    reps: int,
    conds: Sequence[Condition],
    workdir: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Measure one size under every condition; return its block of the results."""
    log(f"{n:,} listings: preparing data (not timed)")
    bench = DistanceBench(stack, n, workdir, log)
    bench.warm_up()
    gc.collect()
    gc.freeze()  # the in-process baselines and the Sheets server skip our big data
    try:
        for rep in range(1, reps + 1):
            for cond in conds:
                log(f"{n:,} listings, {cond.label}: repetition {rep}/{reps}")
                bench.repetition_at(rep, cond)
    finally:
        gc.unfreeze()
    return {"reps": reps, "conditions": bench.distance_summary()}
