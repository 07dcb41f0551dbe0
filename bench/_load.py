"""The serving benchmark's load generator: ``_loadgen.c``, built here, run pinned, and the
percentiles of what it recorded.

``_loadgen.c`` keeps N keep-alive connections busy, one request in flight on each (a closed
loop, like ``wrk -t1 -cN``), and writes every response's latency. Percentiles are taken here
from those samples, nearest rank. ``wrk`` is not used because its latency histogram is
"corrected" for coordinated omission (see ``wrk_corrected``): its p99 at one connection is
not the p99 of the requests it sent. The wrk-style figure is still computed from the same
samples and kept in the JSON, so the two can be compared.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np

from _procs import BenchError, pinned

SOURCE = Path(__file__).resolve().parent / "_loadgen.c"
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


def compiler() -> str | None:
    """The C compiler that builds the load generator, if the machine has one."""
    return shutil.which("cc") or shutil.which("gcc")


def build(out_dir: Path) -> Path:
    """Compile ``_loadgen.c`` into ``out_dir``; a C compiler is the only thing it needs."""
    cc = compiler()
    if cc is None:
        raise BenchError("the load generator needs a C compiler: apt-get install -y gcc")
    binary = out_dir / "loadgen"
    proc = subprocess.run([cc, "-O2", "-o", str(binary), str(SOURCE)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    if proc.returncode != 0:
        raise BenchError(f"compiling {SOURCE.name} failed:\n{proc.stderr}")
    return binary


def write_requests(path: Path, host: str, url_path: str, headers: dict[str, str],
                   bodies: list[bytes]) -> Path:
    """The raw HTTP requests the generator cycles through, one POST per body, each preceded by
    its length and a newline."""
    with path.open("wb") as out:
        for body in bodies:
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            request = (f"POST {url_path} HTTP/1.1\r\nHost: {host}\r\n{head}"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            out.write(b"%d\n" % len(request) + request)
    return path


def percentile(ordered: np.ndarray, p: float) -> float:
    """Nearest-rank percentile of ascending ``ordered`` (nan when empty)."""
    if not len(ordered):
        return math.nan
    return float(ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)])


def wrk_corrected(ordered_us: np.ndarray, expected_us: int) -> np.ndarray:
    """``ordered_us`` with the synthetic samples wrk 4 adds before reporting (``stats_correct``):
    for every sample of at least twice ``expected_us`` (the run's duration divided by the
    requests per connection), also ``sample - k * expected_us`` for each k >= 1 that stays above
    ``expected_us``. A pause of 4 ms at one connection thus counts about 4 ms / interval times,
    more for a server with a shorter interval."""
    if expected_us <= 0:
        return ordered_us
    slow = ordered_us[ordered_us >= 2 * expected_us]
    counts = -(-(slow - expected_us) // expected_us) - 1  # k with sample - k * e > e
    starts = np.repeat(slow, counts)
    steps = np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else np.array([], int)
    return np.sort(np.concatenate([ordered_us, starts - steps * expected_us]))


def run(binary: Path, requests: Path, host: str, port: int, connections: int, seconds: float,
        cpus, samples_path: Path, timeout_s: float = 10.0) -> dict:
    """One closed-loop run; requests/s counts 2xx responses only, latencies are in ms."""
    cmd = pinned([str(binary), host, str(port), str(connections), str(seconds), str(timeout_s),
                  str(requests), str(samples_path)], cpus)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise BenchError(f"the load generator failed (exit {proc.returncode}):\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    latencies_us = np.sort(np.fromfile(samples_path, dtype="<u8").astype(np.int64)) // 1000
    seconds_run = out["duration_us"] / 1e6
    per_connection = out["requests"] // connections  # integers, as wrk computes it
    expected_us = out["duration_us"] // per_connection if per_connection else 0
    corrected = wrk_corrected(latencies_us, expected_us)
    return {
        "connections": connections,
        "requests": out["requests"],
        "seconds": seconds_run,
        "rps": (out["requests"] - out["status"]) / seconds_run if seconds_run else math.nan,
        "p50_ms": percentile(latencies_us, 50) / 1e3,
        "p99_ms": percentile(latencies_us, 99) / 1e3,
        "max_ms": percentile(latencies_us, 100) / 1e3,
        "p99_wrk_ms": percentile(corrected, 99) / 1e3,
        "errors": sum(out[k] for k in ERROR_KINDS),
        "error_detail": {k: out[k] for k in ERROR_KINDS},
    }
