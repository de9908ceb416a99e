import os

import pytest

# Keep torch to one thread in tests: two concurrent runs on two cores stay fast and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_overrides():
    """A digits run small enough for a unit test (seconds on one CPU core)."""
    return dict(initial_labeled=40, budget=20, cycles=2, epochs=8, lr_milestones=(6,))
