"""``python -m bench``: measure listing-sync against the REST floor and the database limit.

Example: python -m bench --sizes 10000 100000 --reps 3
At a distance: python -m bench --sizes 100000 --rtt-ms 0,20,60 --bandwidth-mbit 0,50
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .runner import BenchError, Options, run


def _numbers(values: list[str]) -> list[float]:
    """Parse "0,20,60" or "0 20 60" (or both) into numbers."""
    out = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {part!r}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="listings per sheet"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per size (medians)")
    parser.add_argument(
        "--reps-large", type=int, default=None, help="repetitions for sizes >= 100,000"
    )
    parser.add_argument("--help-runs", type=int, default=10, help="runs of `listing-sync --help`")
    parser.add_argument(
        "--results-dir", type=Path, default=Options.results_dir, help="where the tables go"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="stack + data directory (default: a temp dir)"
    )
    parser.add_argument(
        "--rtt-ms",
        nargs="+",
        default=[],
        metavar="MS",
        help="distance mode: round trips to measure at, e.g. 0,20,60 (bench/netem.py proxies)",
    )
    parser.add_argument(
        "--bandwidth-mbit",
        nargs="+",
        default=["0"],
        metavar="MBIT",
        help="distance mode: link caps in Mbit/s, each with every round trip; 0 = no cap",
    )
    args = parser.parse_args(argv)
    if args.reps < 1 or any(n < 1 for n in args.sizes):
        parser.error("--reps and --sizes must be positive")
    try:
        rtts, bandwidths = _numbers(args.rtt_ms), _numbers(args.bandwidth_mbit)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--rtt-ms/--bandwidth-mbit: {exc}")
    if any(x < 0 for x in (*rtts, *bandwidths)) or not bandwidths:
        parser.error("--rtt-ms and --bandwidth-mbit must be numbers >= 0")
    if args.bandwidth_mbit != ["0"] and not rtts:
        parser.error("--bandwidth-mbit needs --rtt-ms (the distance mode)")
    # A SIGTERM must still stop PostgreSQL and PostgREST (the with-block in run()).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = Options(
        sizes=args.sizes,
        reps=args.reps,
        reps_large=args.reps_large,
        help_runs=args.help_runs,
        results_dir=args.results_dir,
        workdir=args.workdir,
        rtts_ms=rtts,
        bandwidths_mbit=[b or None for b in dict.fromkeys(bandwidths)],
    )
    try:
        _, md, _ = run(options)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(md.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
