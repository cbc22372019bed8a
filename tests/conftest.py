import pytest
import pytest_asyncio
from channels.layers import channel_layers

from tests.browser import launch_options, require_chromium
from tests.stack import Stack, free_port


@pytest.fixture
def fresh_channel_layer():
    """A fresh in-memory channel layer bound to this test's event loop (use it with ``usefixtures``)."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """One headless Chromium for a test module (skipped, or failed with SCS_REQUIRE_BROWSER=1, without it)."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(**launch_options())
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Daphne and the sidecar, shared by the tests of one module."""
    running = Stack(tmp_path_factory.mktemp("stack")).start()
    yield running
    running.stop()


@pytest.fixture
def fresh_stack(tmp_path):
    """Daphne and the sidecar for one test that stops, kills or pauses them."""
    stacks = []

    def make(**env):
        created = Stack(tmp_path / f"stack{len(stacks)}", **env)
        stacks.append(created)
        return created.start()

    yield make
    for created in stacks:
        created.stop()


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory):
    """A Postgres database migrated once per run; each scaled stack starts from a copy of it."""
    from tests.scale import migrated_database, services

    _, database_url = services()
    template = migrated_database(database_url, tmp_path_factory.mktemp("template"))
    yield template.name
    template.drop()


@pytest.fixture(scope="module")
def scaled_stack(tmp_path_factory, postgres_template):
    """Two Daphne processes and two sidecars on Redis + Postgres, shared by one module.

    Skipped, saying so, when Redis or Postgres does not answer (``tests.scale.services``). Watchers
    connect to ``ws_port``; the sidecar at ``mcp_port`` publishes on the Redis layer
    (``SCS_PUBLISH_VIA=auto``), so every live frame crosses Redis. The sidecar at
    ``failover_mcp_port`` publishes over HTTP and lists a dead address before
    ``ws_port`` in its SCS_BROADCAST_URL, so its publisher must move on to the second.
    """
    from tests.scale import ScaledStack, services

    redis_url, database_url = services()
    broadcast_port = free_port()
    running = ScaledStack(tmp_path_factory.mktemp("scaled"), redis_url, database_url, postgres_template,
                          SCS_BROADCAST_URL=f"http://127.0.0.1:{broadcast_port}")
    try:
        running.start()
        running.broadcast_port = running.add_daphne(broadcast_port)
        running.failover_mcp_port = running.add_sidecar(
            SCS_PUBLISH_VIA="http", SCS_BROADCAST_URL=f"http://127.0.0.1:{free_port()},{running.http_url}"
        )
        yield running
    finally:
        running.stop()


@pytest.fixture
def scaled_fresh_stack(tmp_path, postgres_template):
    """``fresh_stack`` on Redis + Postgres: ``make(**env)`` starts a ScaledStack for one test."""
    from tests.scale import ScaledStack, services

    redis_url, database_url = services()
    stacks = []

    def make(**env):
        created = ScaledStack(tmp_path / f"scaled{len(stacks)}", redis_url, database_url, postgres_template, **env)
        stacks.append(created)
        return created.start()

    yield make
    for created in stacks:
        created.stop()
