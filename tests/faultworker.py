"""Child-process entry points for the fault tests (started from a forkserver with torch loaded)."""

import multiprocessing
import os
import sys

from cbal.loop import execute
from cbal.store import Store


def resume(root: str, run_id: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    try:
        execute(Store(root), run_id)
    except BaseException:
        sys.exit(1)


def context() -> multiprocessing.context.BaseContext:
    """A forkserver that imports torch and cbal once, so each killed child starts at once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["torch", "cbal.loop", "cbal.models", "cbal.train", "tests.faultworker"]
    )
    return ctx
