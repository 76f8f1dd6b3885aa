"""Timing, peak memory of a child process, and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ChildRun:
    """One finished child process: exit code, wall time, peak RSS and its output."""

    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


# Runs the command from a small process and reports (exit code, seconds, peak RSS KiB).
# Linux folds the RSS a child had when it was forked into its ru_maxrss (exec keeps the
# high-water mark), so forking the tool straight from this big benchmark process would
# report our size, not the tool's. Forked from this ~10 MB wrapper, it reports its own.
# The tool's helper processes (listing_sync/pipeline/convert.py) are its children: a
# thread reads their VmHWM every 50 ms while they live (and looks for new ones every
# 250 ms, a scan of /proc), so their memory is counted, not hidden by ru_maxrss, which
# is the largest process's peak, not the sum.
_WRAPPER = """
import os, sys, threading, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, f"cannot run {sys.argv[2]}: {exc}\\n".encode())
    os._exit(127)
peaks, own, done = {}, [0], threading.Event()
def field(path, name):
    with open(path) as fh:
        for line in fh:
            if line.startswith(name):
                return line.split()
def children():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(field(f"/proc/{entry}/status", "PPid:")[1]) == pid:
                    found.append(int(entry))
            except (OSError, TypeError, ValueError):
                pass
    return found
def watch():
    tick = 0
    while not done.wait(0.05):
        if tick % 5 == 0:
            for child in children():
                peaks.setdefault(child, 0)
        tick += 1
        for child in [pid, *peaks]:
            try:
                hwm = int(field(f"/proc/{child}/status", "VmHWM:")[1])
            except (OSError, TypeError, ValueError):
                continue
            if child == pid:
                own[0] = hwm
            else:
                peaks[child] = max(peaks[child], hwm)
threading.Thread(target=watch, daemon=True).start()
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - began
done.set()
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    # ru_maxrss: the largest peak of the tool and its reaped children; with helpers,
    # the tool's own last-seen peak plus theirs (an upper bound of their sum's peak).
    fh.write(f"{code} {seconds!r} {max(usage.ru_maxrss, own[0] + sum(peaks.values()))}")
"""


def run_child(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ChildRun:
    """Run ``cmd``; return its exit code, wall time, peak RSS (with its children's) and output.

    Timing and rusage are taken by a small wrapper process around the fork/exec of
    ``cmd`` (see _WRAPPER): the interpreter start of the wrapper is not counted.
    Output goes to temporary files so a chatty child can never block on a full pipe.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r", suffix=".rusage") as report,
    ):
        wrapper = [sys.executable, "-I", "-S", "-c", _WRAPPER, report.name]
        proc = subprocess.run([*wrapper, *cmd], env=env, cwd=cwd, stdout=out, stderr=err)
        fields = report.read().split()
        if len(fields) != 3:
            raise RuntimeError(f"rusage wrapper failed (exit {proc.returncode}) for {cmd!r}")
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=int(fields[0]),
            seconds=float(fields[1]),
            peak_rss_mb=int(fields[2]) / 1024,  # Linux reports KiB
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else "?"


def compile_package() -> None:
    """Write listing_sync's bytecode, as installing it from a wheel does.

    Run from a checkout where PYTHONDONTWRITEBYTECODE is set (or the sources changed since
    their .pyc), every run would compile the package again before its first request:
    about 50 ms in the CLI and in each helper process, which no installed copy pays.
    """
    import compileall

    import listing_sync

    compileall.compile_dir(Path(listing_sync.__file__).parent, quiet=1)


def machine() -> dict[str, object]:
    """Describe the machine and software the numbers were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(_ram_gb(), 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict[str, Any], load_end: object, *, platform: bool = True) -> str:
    """Return the results' "Machine:" line for ``machine()``'s ``m`` and the load at the end."""
    where = f" ({m['platform']})" if platform else ""
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}"
        f"{where}; load average at start {m['load_average']}, at end {load_end}."
    )


def versions(postgrest_bin: str | None, psql_bin: str) -> dict[str, str]:
    out = {"psql": _version([psql_bin, "--version"])}
    if postgrest_bin:
        out["postgrest"] = _version([postgrest_bin, "--version"])
    return out


def slug(text: str) -> str:
    """Return ``text`` as a file-name-safe lower-case slug."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part)
