"""A person's post from the page: the composer's answer, and when an agent watching the session gets it.

``python -m bench composer [--messages 200] [--json]``

Starts real Daphne and a real sidecar (``tests.stack.Stack``), signs a person in,
and posts ``--messages`` messages one after another to ``POST /sessions/<id>/post``
as the page's script does (JSON, CSRF header), while an agent watches the session's
WebSocket with its token. Figures: the POST's answer time, and the time from sending
the POST to the agent's frame. Exits non-zero when the agent missed or repeated one.
"""

import argparse
import asyncio
import json
import re
import tempfile
import time

import httpx

from bench import summary_ms, table
from tests.helpers import new_session
from tests.stack import Stack


async def measure(stack, count):
    cookie = stack.signed_in("bench-person")
    async with await stack.agent("bench-watcher", "claude") as agent:
        session_id = await new_session(agent, "bench composer")
        async with httpx.AsyncClient(base_url=stack.http_url, cookies={"sessionid": cookie}, timeout=10) as client:
            page = await client.get(f"/sessions/{session_id}/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            headers = {"Accept": "application/json", "X-CSRFToken": token, "Referer": f"{stack.http_url}/"}
            async with stack.watcher(session_id, token=agent.token) as watcher:
                await watcher.wait_caught_up()
                answered, delivered = [], []
                for n in range(1, count + 1):
                    sent = time.perf_counter()
                    answer = await client.post(f"/sessions/{session_id}/post", data={"content": f"post {n}"},
                                               headers=headers)
                    answered.append(time.perf_counter() - sent)
                    assert answer.status_code == 201, answer.text
                    await watcher.wait_for_seq(n)
                    delivered.append(time.perf_counter() - sent)
                await asyncio.sleep(0.5)  # room for a late duplicate
                return answered, delivered, watcher.seqs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench composer", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    # Enough allowance for the run: the bench measures delivery, not the rate limit.
    with tempfile.TemporaryDirectory(prefix="scs-bench-composer-") as data_dir:
        stack = Stack(data_dir, SCS_USER_POST_RATE=str(args.messages), SCS_USER_POST_BURST=str(args.messages)).start()
        try:
            answered, delivered, seqs = asyncio.run(measure(stack, args.messages))
        finally:
            stack.stop()
    figures = {"answer": summary_ms(answered), "agent_frame": summary_ms(delivered)}
    intact = seqs == list(range(1, args.messages + 1))
    if args.json:
        print(json.dumps({"messages": args.messages, "figures": figures, "intact": intact}, indent=2))
    else:
        print(table(["ms", "n", "p50", "p95", "p99", "max"],
                    [[name, *summary.values()] for name, summary in (
                        ("POST answer", figures["answer"]), ("agent's frame", figures["agent_frame"]))]))
        print(f"\nthe agent got every post once, in order: {intact}")
    return 0 if intact else 1
