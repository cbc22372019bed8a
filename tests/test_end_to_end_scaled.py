"""The end-to-end suite again, on Redis + Postgres with two Daphne processes.

Every test of ``tests/test_end_to_end.py`` is collected here a second time with
``stack`` bound to ``scaled_stack`` (watchers on one Daphne, broadcasts to the
other) and ``fresh_stack`` to ``scaled_fresh_stack``. Runs whenever Redis and
Postgres answer (``tests.scale.services``); skipped, saying so, otherwise.
"""

import pytest

from tests.test_end_to_end import *  # noqa: F403


@pytest.fixture(scope="module")
def stack(scaled_stack):
    return scaled_stack


@pytest.fixture
def fresh_stack(scaled_fresh_stack):
    return scaled_fresh_stack
