"""``python -m bench.rows``: what reading one sheet row costs, in microseconds of CPU.

Issue 13 asks for read + validate + serialise at most 15 us a row at 100,000 listings.
This measures exactly that part of a run, in one process and one thread (no helper
processes, no network), on the benchmark's 100,000 synthetic listings (``bench.data``:
17 columns, Japanese headers, prices and areas typed as text or numbers, dates as serial
numbers, four columns kept in ``extra``):

- ``cold``: every row validated, as in a first sync: the raw-cells digest
  (``source_hash``), the key, each cell read by its column's reader and the row's
  canonical JSON made (``SheetReading.batches``, as ``make_plan`` drives it); the
  content_hash (sha256 of that JSON) is taken when a row is written and is counted too;
- ``cold, with the Sheets JSON``: the same, starting from the API's response bodies
  (``fastjson``, as the Google client's model reads them);
- ``trusted``: a re-sync where nothing changed: each row's digest matches the table's,
  so it is not validated (the digest and the key only).

CPU time (``time.process_time``) of each pass, the garbage collector set as during a
plan; the median of ``--reps`` passes, after one untimed pass that builds the readers.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from listing_sync import fastjson, mapping
from listing_sync.pipeline.plan import _fewer_collections
from listing_sync.pipeline.progress import NoProgress
from listing_sync.pipeline.read import ReadBatch, SheetReading, TabReading
from listing_sync.schema import LISTINGS
from listing_sync.sheets import SheetBlock

from . import data
from .measure import machine, machine_line
from .runner import _commit

TARGET_US = 15.0
# Rows per Sheets response, as a run asks for them at 17 columns (~2 MB).
RESPONSE_ROWS = 7_000


def _reading(
    header_map: mapping.HeaderMap,
    blocks: Iterator[tuple[int, SheetBlock]],
    known: dict[str, str] | None,
) -> SheetReading:
    reading = SheetReading(
        tabs=[TabReading("物件一覧", header_map)],
        blocks=blocks,
        progress=NoProgress(),
        helpers=0,
    )
    if known is not None:
        reading.known = {"物件一覧": known}
    return reading


def _timed(run: Callable[[], list[ReadBatch]]) -> tuple[float, list[ReadBatch]]:
    with _fewer_collections():
        began = time.process_time()
        batches = run()
        return time.process_time() - began, batches


def measure(n: int, reps: int) -> dict[str, Any]:
    """Time the three passes over ``n`` listings; return seconds and us a row of each."""
    rows = data.sheet(n)
    header, body = rows[0], rows[1:]
    with tempfile.TemporaryDirectory() as tmp:
        aliases = mapping.load_aliases(data.write_mapping(Path(tmp) / "mapping.toml"), LISTINGS)
    header_map = mapping.build_header_map(header, aliases, tab="物件一覧", table=LISTINGS)
    starts = range(0, n, RESPONSE_ROWS)
    parsed = [(0, SheetBlock(2 + at, body[at : at + RESPONSE_ROWS])) for at in starts]
    responses = [
        orjson.dumps(
            {"range": "x", "majorDimension": "ROWS", "values": body[at : at + RESPONSE_ROWS]}
        )
        for at in starts
    ]

    def from_json() -> Iterator[tuple[int, SheetBlock]]:
        for at, raw in zip(starts, responses, strict=True):
            yield 0, SheetBlock(2 + at, fastjson.loads(raw)["values"])

    def written(blocks: Iterator[tuple[int, SheetBlock]]) -> list[ReadBatch]:
        batches = list(_reading(header_map, blocks, None).batches())
        for batch in batches:  # the content_hash, as each row is written
            for row in batch.valid:
                if row is not None:
                    hashlib.sha256(row.body).hexdigest()
        return batches

    def cold() -> list[ReadBatch]:
        return written(iter(parsed))

    def cold_json() -> list[ReadBatch]:
        return written(from_json())

    _, first = _timed(cold)  # untimed: builds the readers, fills the caches of a run
    known = {
        number: row.source
        for batch in first
        for number, row in zip(batch.numbers, batch.valid, strict=True)
        if row is not None
    }
    if len(known) != n:
        raise RuntimeError(f"{len(known)} of {n} rows read as valid")
    del first
    gc.collect()

    def trusted() -> list[ReadBatch]:
        return list(_reading(header_map, iter(parsed), known).batches())

    passes = {"cold": cold, "cold_json": cold_json, "trusted": trusted}
    samples: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(reps):
        for name, run in passes.items():
            seconds, batches = _timed(run)
            validated = sum(v is not None for b in batches for v in b.valid)
            expected = 0 if name == "trusted" else n
            if validated != expected or sum(len(b.numbers) for b in batches) != n:
                raise RuntimeError(f"{name}: {validated} rows validated, expected {expected}")
            del batches
            gc.collect()
            samples[name].append(seconds)
    return {
        name: {
            "samples_s": [round(s, 4) for s in seconds],
            "median_s": round(statistics.median(seconds), 4),
            "us_per_row": round(statistics.median(seconds) / n * 1e6, 2),
        }
        for name, seconds in samples.items()
    }


LABELS = {
    "cold": "read + validate + serialise (cells to canonical JSON, digest, key, content_hash)",
    "cold_json": "the same, from the Sheets API's JSON response bodies",
    "trusted": "a trusted row of a re-sync (digest and key only)",
}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# listing-sync: CPU a sheet row costs, {result['date']}",
        "",
        machine_line(m, result["load_average_end"], platform=False),
        f"Code: commit {result['commit']}. {result['listings']:,} listings of the benchmark's "
        f"17 columns, one process and thread, median of {result['reps']} passes.",
        "",
        "| pass | us a row | seconds (median) | samples s |",
        "|---|---:|---:|---|",
    ]
    for name, label in LABELS.items():
        r = result["passes"][name]
        lines.append(
            f"| {label} | {r['us_per_row']:.1f} | {r['median_s']:.3f} | "
            + ", ".join(f"{s:.3f}" for s in r["samples_s"])
            + " |"
        )
    cold = result["passes"]["cold"]["us_per_row"]
    met = "met" if cold <= TARGET_US else "**not met**"
    lines += [
        "",
        f"Issue 13's target: read + validate + serialise <= {TARGET_US:g} us a row: {met}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rows", description=__doc__)
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--results-dir", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    began = machine()
    passes = measure(args.listings, args.reps)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": began,
        "load_average_end": machine()["load_average"],
        "listings": args.listings,
        "reps": args.reps,
        "target_us_per_row": TARGET_US,
        "passes": passes,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = f"{result['date'][:10]}_rows_n{args.listings}_{began['cores']}c"
    (args.results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results_dir / f"{name}.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
