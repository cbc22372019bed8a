"""End to end: MCP ``add_message`` → sidecar → publisher → Daphne → WebSocket frame.

``python -m bench e2e [--messages 500] [--agents 8] [--per-agent 250] [--client-processes 1]
[--only sequential|concurrent|hung ...] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``) on free ports in a
temporary folder, then measures, in one run:

1. sequential: one agent adds N messages one at a time, each followed by the
   frame's arrival; interleaved with the floor, a no-op tool (``bench_noop``,
   registered because the sidecar runs with ``SCS_BENCH_NOOP_TOOL=1``), so both
   see the same machine load;
2. concurrent: K agents add M messages each to one session at once, watched by
   one WebSocket client; from this process's event loop, or from N spawned client
   processes (``--client-processes N``). Reported next to the latencies: the CPU each
   process (sidecar, Daphne, the clients) spent per message, the machine's busy cores
   over the run against this benchmark's part of them (the rest is other work on a
   shared machine), and ``add_message`` as the sidecar itself times it (from its tool
   middleware to the result, ``get_performance_metrics``), which leaves out HTTP, the
   MCP framing and the client;
3. up vs hung: ``add_message`` latency in alternating rounds with Daphne up and
   Daphne stopped with SIGSTOP; after each hung round Daphne resumes and every
   message must still arrive.

End-to-end latency runs from just before the ``add_message`` call to the frame's
arrival at the WebSocket client. Lost/duplicated/out-of-order are counted from
the seqs each watcher received against the seqs the calls returned. ``--only``
runs the phases named (after the warm-up), e.g. ``--only concurrent``.

The concurrent phase is a closed loop: each agent sends its next call when the last
one answered, so with every process on one machine, latency is about agents x CPU
per message (all processes) / the cores free for them.
"""

import argparse
import asyncio
import collections
import contextlib
import copy
import json
import multiprocessing
import os
import tempfile
import time

from bench import cpu_seconds, machine_cpu_seconds, summary_ms, table
from bench.mcp_http import CLIENTS, LeanAgent
from tests.helpers import new_session
from tests.stack import Stack, Watcher

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
    uvloop = None

TARGETS = {
    "e2e_p50_vs_floor": 2.0,  # end-to-end p50 at most 2x the no-op tool call p50
    "e2e_p99_ms": 20.0,
    "concurrent_msgs_per_s": 200.0,
    "concurrent_e2e_p99_ms": 50.0,
    # add_message p50 with Daphne hung at most 10% above Daphne up: the call must not wait for Daphne (it is often
    # faster, a stopped Daphne leaving its core to the sidecar)
    "hung_vs_up": 1.10,
}


class TimedWatcher(Watcher):
    """A Watcher that also notes when each ``new_message`` frame arrived (``arrivals[seq]``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals = {}  # seq -> perf_counter() of its first arrival
        self.order = []  # seqs in arrival order, duplicates included

    def received(self, frame):
        super().received(frame)
        if frame.get("type") == "new_message":
            self.arrivals.setdefault(frame["seq"], time.perf_counter())
            self.order.append(frame["seq"])

    async def wait_for_all(self, seqs, within):
        wanted = set(seqs)
        with contextlib.suppress(TimeoutError):
            await self.wait(lambda w: wanted <= w.arrivals.keys(), within)

    def delivery(self, expected):
        """Lost, duplicated and out-of-order counts against the ``expected`` seqs."""
        counts = collections.Counter(self.order)
        out_of_order, highest = 0, 0
        for seq in self.order:
            if seq < highest:
                out_of_order += 1
            highest = max(highest, seq)
        return {
            "expected": len(expected),
            "delivered": len(counts.keys() & set(expected)),
            "lost": len(set(expected) - counts.keys()),
            "duplicated": sum(n - 1 for n in counts.values() if n > 1),
            "out_of_order": out_of_order,
        }




class CpuMeter:
    """CPU time each process of the stack (and this client) spends between ``start`` and ``stop``, per message;
    ``machine`` is the whole machine's busy cores over that time (every process, ours and others)."""

    def __init__(self, stack):
        # Every sidecar (--sidecars) counts as one.
        sidecars = [stack.sidecar.pid, *(p.pid for p in stack.more if "mcp_sidecar" in p.args)]
        self.pids = {"sidecar": sidecars, "daphne": [stack.daphne.pid], "client": [None]}
        self.used = {}
        self.machine = None

    def start(self):
        self.before = {name: self._seconds(pids) for name, pids in self.pids.items()}
        self.started, self.machine_before = time.perf_counter(), machine_cpu_seconds()

    @staticmethod
    def _seconds(pids):
        seconds = [cpu_seconds(pid) for pid in pids]
        return None if None in seconds else sum(seconds)

    def stop(self, messages, extra_client_seconds=0.0):
        """CPU ms per message of each process; ``extra_client_seconds``: what client processes reported."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        seconds = {}
        for name, pids in self.pids.items():
            after = self._seconds(pids)
            if after is not None and self.before[name] is not None:
                seconds[name] = after - self.before[name] + (extra_client_seconds if name == "client" else 0)
                self.used[name] = round(seconds[name] * 1000 / max(messages, 1), 2)
        self.ours = round(sum(seconds.values()) / elapsed, 2)
        machine_after = machine_cpu_seconds()
        if machine_after is not None and self.machine_before is not None:
            self.machine = round((machine_after - self.machine_before) / elapsed, 2)
        return self.used


async def timed(coroutine):
    started = time.perf_counter()
    result = await coroutine
    return started, time.perf_counter() - started, result


async def add(agent, session_id, content):
    started, took, result = await timed(agent.call("add_message", session_id=session_id, content=content))
    if not result or not result.get("success"):
        raise RuntimeError(f"add_message failed: {result}")
    return started, took, result["seq"]


async def warm_up(stack, agent, calls=30):
    session_id = await new_session(agent, "bench warm-up")
    async with TimedWatcher(stack, session_id, token=agent.token) as watcher:
        await watcher.wait_caught_up()
        for n in range(calls):
            await agent.raw("bench_noop")
            await add(agent, session_id, f"warm-up {n}")
        await watcher.wait_for_all(range(1, calls + 1), 10)
    meter = CpuMeter(stack)
    meter.start()
    for _ in range(calls * 3):
        await agent.raw("bench_noop")
    return meter.stop(calls * 3)


async def sequential(stack, agent, count):
    session_id = await new_session(agent, "bench sequential")
    floor, call, e2e, seqs = [], [], [], []
    async with TimedWatcher(stack, session_id, token=agent.token) as watcher:
        await watcher.wait_caught_up()
        first = time.perf_counter()
        for n in range(count):
            floor.append((await timed(agent.raw("bench_noop")))[1])
            started, took, seq = await add(agent, session_id, f"sequential {n}")
            call.append(took)
            seqs.append(seq)
            await watcher.wait_for_all([seq], 10)
            if seq in watcher.arrivals:
                e2e.append(watcher.arrivals[seq] - started)
        last = max(watcher.arrivals.values(), default=first)
        delivery = watcher.delivery(seqs)
    # Messages per second here is bounded by the loop above (floor + add + wait).
    return {
        "floor_noop_tool": summary_ms(floor),
        "add_message": summary_ms(call),
        "end_to_end": summary_ms(e2e),
        "msgs_per_s": round(delivery["delivered"] / max(last - first, 1e-9), 1),
        **delivery,
    }


async def sidecar_timing(stack, tool):
    """``{"p50", "p99"}`` of ``tool`` as the sidecar times it (get_performance_metrics: its latest 1000 calls)."""
    admin = await stack.agent("bench-admin", agent_type="admin")
    try:
        timing = (await admin.call("get_performance_metrics"))["tools"][tool]
    finally:
        await admin.close()
    return {"p50": timing["p50_ms"], "p99": timing["p99_ms"]}


async def write(agent, session_id, per_agent):
    """One agent's part of the concurrent phase: ``(started, took, seq)`` of each of its ``add_message`` calls."""
    return [await add(agent, session_id, f"{agent.agent_id} {n}") for n in range(per_agent)]


async def open_agent(stack, agent_id, client, **options):
    """An agent holding a token: fastmcp's ``Client`` (``tests.stack.Agent``) or ``bench.mcp_http.LeanAgent``;
    ``mcp_port`` says which sidecar it calls."""
    agent = await (LeanAgent.open(stack, agent_id, **options) if client == "lean" else stack.agent(agent_id, **options))
    agent.mcp_port = stack.mcp_port
    return agent


def client_process(link, stack, agent_ports, client):
    """A client process of the concurrent phase (``--client-processes``): its agents on its own event loop.

    Sends "ready" once its agents hold tokens, then, for each ``(session_id, per_agent)`` it receives, the
    ``(started, took, seq)`` of every call and the CPU seconds it spent making them; ``("error", text)`` if it failed.
    """
    import traceback

    async def serve():
        agents = [await open_agent(stack.via(mcp_port=port), agent_id, client) for agent_id, port in agent_ports]
        try:
            link.send("ready")
            loop = asyncio.get_running_loop()
            while (job := await loop.run_in_executor(None, link.recv)) is not None:
                session_id, per_agent = job
                before = cpu_seconds()
                calls = await asyncio.gather(*(write(agent, session_id, per_agent) for agent in agents))
                link.send(([call for each in calls for call in each], cpu_seconds() - before))
        finally:
            for agent in agents:
                with contextlib.suppress(Exception):
                    await agent.close()

    try:
        (uvloop.run if uvloop else asyncio.run)(serve())
    except Exception:  # noqa: BLE001 - reported to the parent, which raises
        with contextlib.suppress(OSError):
            link.send(("error", traceback.format_exc()))
    finally:
        link.close()


class ClientProcesses:
    """The concurrent agents spread over ``count`` spawned client processes (agent n in process n mod count).

    Started (and the agents authenticated) before the phase; ``run`` starts every process's calls at once and
    returns each call's ``(started, took, seq)`` and the CPU seconds the processes spent on them. Times are
    ``time.perf_counter()``, one monotonic clock for every process of this machine.
    """

    def __init__(self, stack, agent_ports, count, client):
        view = copy.copy(stack)  # what a child needs: URLs and keys, not the server processes
        view.daphne = view.sidecar = None
        view.more = []
        context = multiprocessing.get_context("spawn")
        self.links = []
        for n in range(count):
            here, there = context.Pipe()
            process = context.Process(target=client_process, args=(there, view, agent_ports[n::count], client),
                                      daemon=True)
            process.start()
            there.close()
            self.links.append((process, here))

    async def _answers(self):
        loop = asyncio.get_running_loop()
        answers = await asyncio.gather(*(loop.run_in_executor(None, here.recv) for _, here in self.links))
        for answer in answers:
            if isinstance(answer, tuple) and answer[0] == "error":
                raise RuntimeError(f"a client process failed:\n{answer[1]}")
        return answers

    async def ready(self):
        await self._answers()
        return self

    async def run(self, session_id, per_agent):
        for _, here in self.links:
            here.send((session_id, per_agent))
        answers = await self._answers()
        return [call for calls, _ in answers for call in calls], sum(cpu for _, cpu in answers)

    def close(self):
        for process, here in self.links:
            with contextlib.suppress(OSError):
                here.send(None)
            process.join(10)
            if process.is_alive():
                process.kill()
            here.close()


async def concurrent(stack, agents, per_agent, client_processes=1, client="fastmcp"):
    """K agents add M messages each to one session at once; with ``client_processes`` > 1 the agents make
    their calls from that many other processes (this one keeps the watcher)."""
    session_id = await new_session(agents[0], "bench concurrent")
    clients = None
    if client_processes > 1:
        agent_ports = [(agent.agent_id, agent.mcp_port) for agent in agents]
        clients = await ClientProcesses(stack, agent_ports, client_processes, client).ready()
    meter = CpuMeter(stack)
    try:
        async with TimedWatcher(stack, session_id, token=agents[0].token) as watcher:
            await watcher.wait_caught_up()
            meter.start()
            first = time.perf_counter()
            if clients is None:
                calls = [c for each in await asyncio.gather(*(write(a, session_id, per_agent) for a in agents))
                         for c in each]
                client_cpu = 0.0
            else:
                calls, client_cpu = await clients.run(session_id, per_agent)
            started_at = {seq: started for started, _, seq in calls}
            await watcher.wait_for_all(started_at, 30)
            last = max(watcher.arrivals.values(), default=first)
            cpu = meter.stop(len(started_at), client_cpu)  # with client processes: theirs and the watcher's
            inside = await sidecar_timing(stack, "add_message")
            delivery = watcher.delivery(list(started_at))
            e2e = [watcher.arrivals[seq] - started for seq, started in started_at.items() if seq in watcher.arrivals]
    finally:
        if clients is not None:
            clients.close()
    return {
        "agents": len(agents),
        "client_processes": client_processes,
        "add_message": summary_ms([took for _, took, _ in calls]),
        "end_to_end": summary_ms(e2e),
        "msgs_per_s": round(delivery["delivered"] / max(last - first, 1e-9), 1),
        "seconds": round(last - first, 2),
        "cpu_ms_per_message": cpu,
        # The whole machine's busy cores meanwhile, and this benchmark's part (its processes' CPU per message times
        # messages per second): the difference is other work sharing the machine.
        "machine_busy_cores": meter.machine,
        "bench_busy_cores": meter.ours,
        "sidecar_add_message": inside,
        **delivery,
    }


async def up_versus_hung(stack, agent, rounds, calls):
    session_id = await new_session(agent, "bench up vs hung")
    latencies = {"up": [], "hung": []}
    seqs = []
    async with TimedWatcher(stack, session_id, token=agent.token) as watcher:
        await watcher.wait_caught_up()
        for n in range(rounds):
            for state in ("up", "hung"):
                if state == "hung":
                    stack.pause_daphne()
                try:
                    for i in range(calls):
                        _, took, seq = await add(agent, session_id, f"{state} {n}.{i}")
                        latencies[state].append(took)
                        seqs.append(seq)
                finally:
                    if state == "hung":
                        stack.resume_daphne()
                # Let the publisher catch up before the next round, so rounds do not overlap.
                await watcher.wait_for_all(seqs, 30)
        delivery = watcher.delivery(seqs)
    up, hung = summary_ms(latencies["up"]), summary_ms(latencies["hung"])
    return {
        "up": up,
        "hung": hung,
        "ratio_p50": round(hung["p50"] / up["p50"], 3),
        "ratio_p95": round(hung["p95"] / up["p95"], 3),
        **delivery,
    }


async def measure(stack, args):
    agents = []
    try:
        ports = [stack.mcp_port, *(stack.add_sidecar() for _ in range(args.sidecars - 1))]
        # Agent n calls sidecar n mod --sidecars, as behind a balancer; the other phases use agent 0's.
        agents = [await open_agent(stack.via(mcp_port=ports[n % len(ports)]), f"bench-{n}", args.client)
                  for n in range(max(args.agents, 1))]
        floor_cpu = await warm_up(stack, agents[0])
        results = {"client": args.client, "sidecars": len(ports), "cpu_ms_per_noop_call": floor_cpu}
        if "sequential" in args.only:
            results["sequential"] = await sequential(stack, agents[0], args.messages)
        if "concurrent" in args.only:
            results["concurrent"] = await concurrent(stack, agents[: args.agents], args.per_agent,
                                                     args.client_processes, args.client)
        if "hung" in args.only:
            results["up_vs_hung"] = await up_versus_hung(stack, agents[0], args.rounds, args.hung_calls)
        health = stack.sidecar_health()
        results["bridge"], results["writes"] = health["bridge"], health["writes"]
        return results
    finally:
        for agent in agents:
            with contextlib.suppress(Exception):
                await agent.close()


def verdict(ok):
    return "ok" if ok else "MISSED"


PHASES = ("sequential", "concurrent", "hung")


def report(results):
    seq, conc, hung = results.get("sequential"), results.get("concurrent"), results.get("up_vs_hung")
    lat_rows, delivery_rows, targets, lines = [], [], [], []
    rows = []
    if seq:
        rows += [("floor: no-op tool call (bench_noop)", seq["floor_noop_tool"]),
                 ("sequential: add_message call", seq["add_message"]),
                 ("sequential: end to end (call -> frame)", seq["end_to_end"])]
        delivery_rows.append(("sequential", seq))
        floor, e2e = seq["floor_noop_tool"]["p50"], seq["end_to_end"]
        targets += [
            ("e2e p50 within 2x floor", f"{e2e['p50']} ms vs {floor} ms ({e2e['p50'] / floor:.2f}x)",
             verdict(e2e["p50"] <= TARGETS["e2e_p50_vs_floor"] * floor)),
            ("e2e p99 < 20 ms", f"{e2e['p99']} ms", verdict(e2e["p99"] < TARGETS["e2e_p99_ms"])),
        ]
    if conc:
        rows += [(f"{conc['agents']} agents: add_message call", conc["add_message"]),
                 (f"{conc['agents']} agents: end to end", conc["end_to_end"])]
        delivery_rows.append((f"{conc['agents']} agents concurrent", conc))
        targets += [
            (f"{conc['agents']} agents > 200 msg/s", f"{conc['msgs_per_s']} msg/s",
             verdict(conc["msgs_per_s"] > TARGETS["concurrent_msgs_per_s"])),
            (f"{conc['agents']} agents e2e p99 < 50 ms", f"{conc['end_to_end']['p99']} ms",
             verdict(conc["end_to_end"]["p99"] < TARGETS["concurrent_e2e_p99_ms"])),
        ]
        clients = conc["client_processes"]
        sidecars = f"{results['sidecars']} sidecars, " if results["sidecars"] > 1 else ""
        lines.append(f"CPU ms per message ({conc['agents']} agents; {sidecars}{results['client']} client: "
                     + (f"{clients} client processes + the watcher's" if clients > 1 else "this process") + "): "
                     + ", ".join(f"{name} {ms}" for name, ms in conc["cpu_ms_per_message"].items()))
        lines.append(f"busy cores over the {conc['agents']} agents' run: {conc['machine_busy_cores']} of "
                     f"{os.cpu_count()} on this machine, {conc['bench_busy_cores']} of them this benchmark's processes")
        inside = conc["sidecar_add_message"]
        lines.append(f"add_message as the sidecar times it (its latest 1000 calls, middleware to result): "
                     f"p50 {inside['p50']} ms, p99 {inside['p99']} ms")
    if hung:
        rows += [("add_message, Daphne up", hung["up"]), ("add_message, Daphne hung (SIGSTOP)", hung["hung"])]
        delivery_rows.append(("up vs hung", hung))
        targets.append(("add_message hung at most 1.1x up", f"p50 x{hung['ratio_p50']}, p95 x{hung['ratio_p95']}",
                        verdict(hung["ratio_p50"] <= TARGETS["hung_vs_up"])))
    phases = [r for _, r in delivery_rows]
    targets.append(("0 lost / dup / out of order",
                    ", ".join(f"{r['lost']}/{r['duplicated']}/{r['out_of_order']}" for r in phases),
                    verdict(not any(r["lost"] or r["duplicated"] or r["out_of_order"] for r in phases))))
    lat_rows = [(label, s["n"], s["p50"], s["p95"], s["p99"], s["max"]) for label, s in rows]
    lines.append("CPU ms per no-op tool call: "
                 + ", ".join(f"{name} {ms}" for name, ms in results["cpu_ms_per_noop_call"].items()))
    bridge, writes = results["bridge"], results["writes"]
    lines.append(f"messages stored (the first sidecar, warm-up included): {writes['messages']} in "
                 f"{writes['transactions']} transactions")
    return "\n\n".join([
        table(["latency (ms)", "n", "p50", "p95", "p99", "max"], lat_rows),
        table(["delivery", "expected", "delivered", "lost", "dup", "out of order", "msg/s"], [
            (name, r["expected"], r["delivered"], r["lost"], r["duplicated"], r["out_of_order"], r.get("msgs_per_s"))
            for name, r in delivery_rows]),
        table(["target", "measured", ""], targets),
        *lines,
        "bridge: " + ", ".join(f"{k}={bridge.get(k)}" for k in
                               ("sent", "batches", "failed_attempts", "retried", "dropped", "queue_depth")),
    ])


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="sequential messages (default 500)")
    parser.add_argument("--agents", type=int, default=8, help="concurrent agents (default 8)")
    parser.add_argument("--per-agent", type=int, default=250, help="messages per concurrent agent (default 250)")
    parser.add_argument("--client-processes", type=int, default=1, metavar="N",
                        help="make the concurrent agents' calls from N other processes (default 1: this one)")
    parser.add_argument("--client", choices=CLIENTS, default="fastmcp",
                        help="the agents' MCP client: fastmcp's Client (default), or lean: the same requests from "
                             "an aiohttp session (bench/mcp_http.py), so that a client beside the server on the same "
                             "cores takes less of their CPU")
    parser.add_argument("--sidecars", type=int, default=1, metavar="N",
                        help="run N sidecars on one database and Daphne, the concurrent agents spread over them "
                             "as a balancer would (default 1); their CPU is summed")
    parser.add_argument("--rounds", type=int, default=10, help="up/hung round pairs (default 10)")
    parser.add_argument("--hung-calls", type=int, default=30, help="add_message calls per round (default 30)")
    parser.add_argument("--only", action="append", choices=PHASES, metavar="PHASE",
                        help=f"run only this phase (repeatable; one of {', '.join(PHASES)}; default all)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for both processes, e.g. CHANNEL_LAYER_URL=redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs, database) and print it")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    args = parser.parse_args(argv)
    if args.sidecars < 1:
        parser.error("--sidecars must be at least 1")
    args.only = args.only or PHASES
    return args


def main(argv=None):
    args = parse(argv or [])
    env = dict(item.split("=", 1) for item in args.env)
    folder = tempfile.mkdtemp(prefix="scs-bench-") if args.keep else None
    with contextlib.ExitStack() as cleanup:
        data_dir = folder or cleanup.enter_context(tempfile.TemporaryDirectory(prefix="scs-bench-"))
        stack = Stack(data_dir, SCS_BENCH_NOOP_TOOL="1", **env).start()
        cleanup.callback(stack.stop)
        if not args.json:
            print(f"Daphne pid {stack.daphne.pid} on :{stack.ws_port}, sidecar pid {stack.sidecar.pid} on "
                  f":{stack.mcp_port}; {args.messages} sequential, {args.agents} agents x {args.per_agent}",
                  flush=True)
        runner = uvloop.run if uvloop else asyncio.run
        results = runner(measure(stack, args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report(results))
        if folder:
            print(f"data folder kept: {folder}")
    broken = any(results[k]["lost"] or results[k]["duplicated"] or results[k]["out_of_order"]
                 for k in ("sequential", "concurrent", "up_vs_hung") if k in results)
    return 1 if broken else 0
