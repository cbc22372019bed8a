"""Benchmarks (not tests): ``python -m bench e2e``, ``python -m bench all``.

Each benchmark is a module here exposing ``main(argv) -> int``: ``e2e`` and any
``<name>_bench.py``. They start real processes, print their figures, and exit
non-zero only when a delivery guarantee was broken (never on a slow figure).
"""

import math
import os
from pathlib import Path


def percentile(samples, fraction):
    """Nearest-rank percentile of ``samples`` (``fraction`` in 0..1); None when empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds):
    """``{"n", "p50", "p95", "p99", "max"}`` in milliseconds for samples in seconds."""
    return {
        "n": len(seconds),
        **{name: round(percentile(seconds, f) * 1000, 2) if seconds else None
           for name, f in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
    }


def table(headers, rows):
    """A plain-text table with right-aligned columns (the first left-aligned)."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def cpu_seconds(pid=None):
    """User + system CPU seconds used so far by process ``pid`` (this process when None); None off Linux."""
    if pid is None or pid == "self":
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """CPU seconds every process of this machine has used so far, all cores together (/proc/stat); None off Linux.

    Next to the benchmark's own processes' figures it shows what else ran meanwhile: on a shared
    machine the others' load is a large part of a latency measured there.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def redis_pid(url):
    """The Redis server's pid when it runs on this machine and says so (INFO server)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        pid = client.info("server").get("process_id")
        client.close()
    except redis.RedisError:
        return None
    return pid if pid and cpu_seconds(pid) is not None else None
