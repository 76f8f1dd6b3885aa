"""``python -m bench``: measure listing-sync against the REST floor and the database limit.

Example: python -m bench --sizes 10000 100000 --reps 3
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .runner import BenchError, Options, run


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
    args = parser.parse_args(argv)
    if args.reps < 1 or any(n < 1 for n in args.sizes):
        parser.error("--reps and --sizes must be positive")
    # A SIGTERM must still stop PostgreSQL and PostgREST (the with-block in run()).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = Options(
        sizes=args.sizes,
        reps=args.reps,
        reps_large=args.reps_large,
        help_runs=args.help_runs,
        results_dir=args.results_dir,
        workdir=args.workdir,
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
