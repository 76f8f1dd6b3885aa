"""A seeded randomized fault campaign against the real local stack (issue 12).

Each round edits the sheet at random, then runs ``listing-sync sync all`` with a
random fault between it and PostgREST (503/500/502, a connection dropped before or
after the request reached the server, a request held past the client's timeout and
executed late), a random Sheets error (429/503/500), and maybe a SIGTERM or SIGKILL
at a random moment. A clean run follows, and the invariants are checked:

- the clean run exits 0; no run ever exits 70;
- the table's active listings equal the sheet (number, address, price);
- the clean run's record counts are what happened (written = new + changed,
  unchanged, removed, total) and its exit code is the process's;
- every process created at most one sync_state row, nothing is left queued or
  in_progress, and a run that exited 0/1 is recorded completed/partial with that code.

Then ``--hostile`` sheets full of hostile cells and headers (NUL, lone surrogates,
4,301-digit numbers, formula errors, huge text, emoji) are synced: none may exit 70,
the --json output must parse, every good row must be in the table, and the run's
record must be final with the process's exit code.

    .venv/bin/python scripts/chaos.py --seed 1 --rounds 300 --hostile 300

Exits 0 when there was no violation, 1 otherwise (each violation is printed).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e_util import HEADER, row  # noqa: E402

from devstack import LocalStack  # noqa: E402
from devstack.proxy import FaultProxy  # noqa: E402

TAB = "Listings"
LISTINGS, STATE = "/property_listings", "/sync_state"
ENV = {
    "SYNC_RETRY_DELAY": "1",  # ms: retries without waiting
    "SYNC_RATE_LIMIT": "1000",
    "SYNC_HTTP_TIMEOUT": "0.5",  # a held request is past it
    "SYNC_CIRCUIT_BREAKER_TIMEOUT": "50",  # ms: an opened breaker is closed again by the next run
    "SYNC_RETRY_ATTEMPTS": "4",
}
PG_FAULTS = ("none", "503", "500", "502", "dropped", "partial", "lost", "held")
SHEETS_FAULTS = ("none", "none", "none", "429", "503", "500")
SIGNALS = ("none", "none", "none", "SIGTERM", "SIGKILL")
TARGETS = [("POST", STATE), ("PATCH", STATE), ("POST", LISTINGS), ("PATCH", LISTINGS)]
TARGETS += [("GET", LISTINGS), ("GET", STATE)]


class Campaign:
    def __init__(self, stack: LocalStack, proxy: FaultProxy, rnd: random.Random) -> None:
        self.stack, self.proxy, self.rnd = stack, proxy, rnd
        self.sheet: dict[str, tuple[str, int]] = {}
        self.next_number = 0
        self.violations: list[str] = []
        self.exits: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    # -- the sheet --------------------------------------------------------------------
    def put_sheet(self) -> None:
        rows = [row(n, address=a, price=p) for n, (a, p) in sorted(self.sheet.items())]
        self.stack.sheets.set_sheet(self.stack.spreadsheet_id, TAB, [HEADER, *rows])

    def edit(self) -> None:
        rnd = self.rnd
        # New listings; at least one while the sheet is empty: an empty sheet stops a run
        # by design (exit 65, "a header but no data rows"), which is not what is tested here.
        for _ in range(rnd.randint(0 if self.sheet else 1, 4)):
            self.sheet[f"C-{self.next_number:05d}"] = (
                f"addr {rnd.random():.6f}",
                rnd.randint(1, 10**9),
            )
            self.next_number += 1
        for number in rnd.sample(sorted(self.sheet), min(len(self.sheet), rnd.randint(0, 3))):
            self.sheet[number] = (f"addr {rnd.random():.6f}", rnd.randint(1, 10**9))
        # Remove at most 10%: below SYNC_MAX_REMOVE_FRACTION, so no run stops for it.
        removable = len(self.sheet) // 10
        for number in rnd.sample(sorted(self.sheet), rnd.randint(0, removable)):
            del self.sheet[number]
        self.put_sheet()

    # -- running ----------------------------------------------------------------------
    def spawn(self, *args: str) -> subprocess.Popen[str]:
        env = self.stack.env(POSTGREST_URL=self.proxy.url, **ENV)
        return subprocess.Popen(
            [sys.executable, "-m", "listing_sync", *args],
            env=env,
            text=True,
            encoding="utf-8",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )

    def run(self, *args: str, kill: str = "none") -> tuple[int, int, str, str]:
        proc = self.spawn(*args)
        if kill != "none":
            # 0.3-3 s: mostly inside the run (start-up takes about 0.6-1 s here)
            time.sleep(self.rnd.uniform(0.3, 3.0))
            proc.send_signal(getattr(signal, kill))
        out, err = proc.communicate(timeout=300)
        return proc.pid, proc.returncode, out, err

    def inject(self) -> str:
        rnd = self.rnd
        kind = rnd.choice(PG_FAULTS)
        method, path = rnd.choice(TARGETS)
        skip = rnd.randint(0, 2)
        if kind in ("503", "500", "502"):
            self.proxy.fail(
                rnd.randint(1, 3), status=int(kind), method=method, path=path, skip=skip
            )
        elif kind in ("dropped", "partial"):
            self.proxy.drop(1, partial=kind == "partial", method=method, path=path, skip=skip)
        elif kind == "lost":
            self.proxy.lose_answer(1, method=method, path=path, skip=skip)
        elif kind == "held":
            self.proxy.hold(1, method=method, path=path, skip=skip, seconds=60)
        sheets = rnd.choice(SHEETS_FAULTS)
        if sheets != "none":
            self.stack.sheets.fail_next(rnd.randint(1, 2), status=int(sheets))
        return f"{kind}:{method} {path}+{skip}" if kind != "none" else "none", sheets

    def settle(self) -> None:
        """Let held requests land (late), then forward everything."""
        self.proxy.release()
        self.proxy.wait_idle(60)
        self.proxy.clear_faults()
        self.stack.sheets.clear_faults()

    # -- checks -----------------------------------------------------------------------
    def violation(self, where: str, what: str) -> None:
        self.violations.append(f"{where}: {what}")
        print(f"VIOLATION {where}: {what}", flush=True)

    def table(self) -> dict[str, tuple[str, int]]:
        rows = self.stack.sql(
            "select property_number, address, price from property_listings where removed_at is null"
        )
        return {n or "": (a or "", int(p or 0)) for n, a, p in rows}

    def run_of(self, pid: int) -> list[dict[str, Any]]:
        rows = self.stack.sql(
            "select coalesce(json_agg(s order by started_at), '[]') from sync_state s "
            f"where pid = {pid}"
        )
        return json.loads(rows[0][0] or "[]")

    def check_process(self, where: str, pid: int, code: int, killed: bool) -> None:
        self.exits[str(code)] += 1
        if code == 70:
            self.violation(where, "exit 70")
        records = self.run_of(pid)
        if len(records) > 1:
            self.violation(where, f"{len(records)} sync_state rows for one process")
        if records and code in (0, 1) and not killed:
            rec = records[0]
            expected = {0: "completed", 1: "partial"}[code]
            if (rec["status"], rec["exit_code"]) != (expected, code):
                self.violation(
                    where, f"exit {code} but recorded {rec['status']}/{rec['exit_code']}"
                )

    def check_no_running(self, where: str) -> None:
        open_runs = self.stack.sql(
            "select count(*) from sync_state where status in ('queued', 'in_progress')"
        )
        if open_runs[0][0] != "0":
            self.violation(where, f"{open_runs[0][0]} run(s) left queued/in_progress")

    def clean_run(self, where: str) -> None:
        before = self.table()
        new = [n for n in self.sheet if n not in before]
        changed = [n for n in self.sheet if n in before and before[n] != self.sheet[n]]
        removed = [n for n in before if n not in self.sheet]
        pid, code, out, err = self.run("sync", "all", "--json")
        self.check_process(where, pid, code, killed=False)
        if code != 0:
            self.violation(where, f"clean run exited {code}: {err.strip()[-300:]}")
            return
        if self.table() != self.sheet:
            self.violation(where, "table != sheet after a clean run")
        (rec,) = self.run_of(pid) or [None]
        if rec is None:
            self.violation(where, "clean run has no sync_state row")
            return
        got = (rec["total_items"], rec["success_count"], rec["skipped_count"], rec["removed_count"])
        want = (
            len(self.sheet),
            len(new) + len(changed),
            len(self.sheet) - len(new) - len(changed),
            len(removed),
        )
        if got != want:
            self.violation(where, f"counts (total, written, unchanged, removed) {got} != {want}")
        report = json.loads(out)
        if report["sync_id"] != rec["id"]:
            self.violation(where, "--json sync_id is not the recorded run")
        self.check_no_running(where)

    # -- rounds -----------------------------------------------------------------------
    def fault_round(self, i: int) -> None:
        where = f"round {i}"
        self.edit()
        fault, sheets = self.inject()
        kill = self.rnd.choice(SIGNALS)
        self.faults[fault.split(":")[0]] += 1
        self.faults[f"sheets {sheets}"] += 1
        self.faults[f"signal {kill}"] += 1
        pid, code, _out, _err = self.run("sync", "all", kill=kill)
        self.settle()
        self.check_process(f"{where} ({fault}, sheets {sheets}, {kill})", pid, code, kill != "none")
        self.clean_run(f"{where} clean")

    def hostile_round(self, i: int) -> None:
        where = f"hostile {i}"
        rnd = self.rnd
        header = list(HEADER)
        if rnd.random() < 0.3:
            header.append(rnd.choice(HOSTILE_TEXT) + "メモ")
        # A header the tool may refuse (65, one line); any other sheet must sync.
        allowed = (0, 1, 65) if header[-1].startswith("#") else (0, 1)
        good, rows = [], []
        for k in range(rnd.randint(1, 12)):
            number = f"H-{i:04d}-{k:02d}"
            if rnd.random() < 0.5:
                rows.append(row(number))
                good.append(number)
            else:
                column = rnd.choice(
                    [
                        "price",
                        "land_area_m2",
                        "walk_minutes",
                        "listed_on",
                        "address",
                        "notes",
                        "parking",
                    ]
                )
                rows.append(row(number, **{column: rnd.choice(HOSTILE_CELLS)}))
        rows = [r + ["x"] * (len(header) - len(HEADER)) for r in rows]
        self.stack.sheets.set_sheet(self.stack.spreadsheet_id, TAB, [header, *rows])
        pid, code, out, err = self.run("sync", "all", "--json", "--allow-mass-removal")
        self.check_process(where, pid, code, killed=False)
        try:
            json.loads(out)
        except ValueError:
            self.violation(where, f"--json output does not parse: {out[:200]!r}")
        if code not in allowed:
            self.violation(where, f"exit {code}: {err.strip()[-300:]}")
        if code not in (0, 1):
            return
        active = self.table()
        missing = [n for n in good if n not in active]
        if missing:
            self.violation(where, f"good rows not written: {missing}")
        self.check_no_running(where)
        (rec,) = self.run_of(pid) or [None]
        if rec is None or rec["status"] not in ("completed", "partial"):
            self.violation(where, f"record not final: {rec and rec['status']}")


HOSTILE_TEXT = ["\x00", "\ud83d", "\udc80", "🏠", "#REF!", "\u202e", "a\u0301", "\ufeff"]
HOSTILE_CELLS: list[object] = [
    "9" * 4301,
    "1" * 5000 + ".5",
    "12\x00万円",
    "価格\ud83d",
    "\udc80",
    "🏠" * 1000,
    "#N/A",
    "#REF!",
    "x" * 60000,
    "-1",
    "1e400",
    "NaN",
    "2025-02-30",
    "\u202e123",
    "",
    " ",
    1e308,
    -0.0,
    2**53 + 1,
    "TRUE\x00",
    "'; drop table sync_state; --",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=50, help="fault rounds (each + a clean run)")
    parser.add_argument("--hostile", type=int, default=50, help="hostile sheets")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, still stop the stack it started (the with blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rnd = random.Random(args.seed)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as tmp,
        LocalStack(Path(tmp)) as stack,
        FaultProxy(stack.postgrest_url) as proxy,
    ):
        campaign = Campaign(stack, proxy, rnd)
        for i in range(args.rounds):
            campaign.fault_round(i)
            if i % 10 == 9:
                print(f"round {i + 1}: {len(campaign.violations)} violation(s)", flush=True)
        for i in range(args.hostile):
            campaign.hostile_round(i)
            if i % 10 == 9:
                print(f"hostile {i + 1}: {len(campaign.violations)} violation(s)", flush=True)
        runs = stack.sql("select status, count(*) from sync_state group by status order by 1")
    summary = {
        "seed": args.seed,
        "rounds": args.rounds,
        "hostile": args.hostile,
        "violations": len(campaign.violations),
        "seconds": round(time.monotonic() - started),
        "exit_codes": dict(sorted(campaign.exits.items())),
        "faults": dict(sorted(campaign.faults.items())),
        "sync_state": {s: int(c or 0) for s, c in runs},
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if campaign.violations else 0


if __name__ == "__main__":
    sys.exit(main())
