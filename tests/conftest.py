import pytest

from tests.stack import Stack


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
