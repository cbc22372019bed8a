"""Per-tool call counts and latencies, kept in process for get_performance_metrics."""

import collections
import time

WINDOW = 1000  # latest latencies kept per tool
MAX_TOOLS = 100  # distinct names tracked


class ToolMetrics:
    def __init__(self):
        self.started = time.time()
        self.calls = collections.Counter()
        self.errors = collections.Counter()
        self.latencies = collections.defaultdict(lambda: collections.deque(maxlen=WINDOW))

    def record(self, tool, seconds, ok):
        if tool not in self.calls and len(self.calls) >= MAX_TOOLS:
            tool = "<other>"  # names are caller-chosen (unknown tools too): keep the table bounded
        self.calls[tool] += 1
        if not ok:
            self.errors[tool] += 1
        self.latencies[tool].append(seconds)

    def snapshot(self):
        tools = {}
        # Read from a worker thread while the event loop records: copy before iterating.
        for name, samples in list(self.latencies.items()):
            ordered = sorted(samples.copy())
            tools[name] = {
                "calls": self.calls[name],
                "errors": self.errors[name],
                "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            }
        return {"uptime_seconds": round(time.time() - self.started), "tools": tools}


tool_metrics = ToolMetrics()
