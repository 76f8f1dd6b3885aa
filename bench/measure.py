"""Timing, peak memory of a child process, and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ChildRun:
    """One finished child process: exit code, wall time, peak RSS and its output."""

    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ChildRun:
    """Run ``cmd`` and return its wall time and its own peak RSS (from wait4's rusage).

    ``os.wait4`` reports the rusage of exactly this child (and the children it waited
    for), so the number is the tool's own high-water mark, whatever ran before.
    Output goes to temporary files so a chatty child can never block on a full pipe.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=proc.returncode,
            seconds=seconds,
            peak_rss_mb=usage.ru_maxrss / 1024,  # Linux reports KiB
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


def versions(postgrest_bin: str | None, psql_bin: str) -> dict[str, str]:
    out = {"psql": _version([psql_bin, "--version"])}
    if postgrest_bin:
        out["postgrest"] = _version([postgrest_bin, "--version"])
    return out


def slug(text: str) -> str:
    """Return ``text`` as a file-name-safe lower-case slug."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part)
