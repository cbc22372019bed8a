"""The rights tests again on Redis + Postgres, and the connection cap across two Daphne processes.

Every test of ``tests/test_live_rights.py`` is collected here a second time with
``stack`` on Redis + Postgres. Runs whenever Redis and Postgres
answer (``tests.scale.services``); skipped, saying so, otherwise.
"""

import asyncio

import pytest

from realtime.live.closecodes import CLOSE_TOO_MANY
from tests.test_live_rights import *  # noqa: F403
from tests.test_live_rights import CAP, CREDENTIAL, close_all, open_all


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_template):
    from tests.scale import ScaledStack, services

    redis_url, database_url = services()
    running = ScaledStack(tmp_path_factory.mktemp("rights-scaled"), redis_url, database_url, postgres_template,
                          SCS_MAX_CONNECTIONS_PER_VIEWER=CAP)
    try:
        yield running.start()
    finally:
        running.stop()


async def test_the_cap_counts_connections_on_every_daphne_process(stack, admin):
    # Fails if the cap were counted per process (each Daphne would admit CAP).
    other = stack.via(ws_port=stack.add_daphne())
    _, token = (await asyncio.to_thread(stack.shell, CREDENTIAL.format(agent="spread"))).split()
    watchers = await open_all([
        (stack if i % 2 else other).watcher(admin.session_id, token=token)
        for i in range(CAP + 10)
    ])
    assert sum(w.closed is None for w in watchers) == CAP
    assert {w.closed for w in watchers if w.closed is not None} == {CLOSE_TOO_MANY}
    await close_all(watchers)
