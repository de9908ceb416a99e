"""cbal: class-balanced active learning for image classification.

The public entry points, imported on first use (``import cbal`` stays cheap):
:func:`register_strategy` and :func:`register_score` add a strategy to the registry, and
:func:`run` runs one configuration, on a built-in dataset or on arrays held in memory.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register_score", "register_strategy", "run"]


def __getattr__(name: str) -> Any:
    # lazy: a plug-in imported while cbal.strategies loads can still `from cbal import ...`
    if name in ("register_score", "register_strategy"):
        from cbal import strategies

        return getattr(strategies, name)
    if name == "run":
        from cbal.api import run

        return run
    raise AttributeError(f"module 'cbal' has no attribute {name!r}")
