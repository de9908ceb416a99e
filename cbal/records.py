"""The shape of status.json and of a cycles.jsonl line, checked whenever one is read.

A run folder may have been hand-edited, copied from elsewhere or damaged: every reader gets
records whose keys and types are those below, or a :class:`Damaged` saying which file is wrong
and why, never a KeyError or TypeError far from the cause.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class Damage:
    """What is wrong with one run folder: the file and the reason."""

    run_id: str
    file: str
    reason: str

    def __str__(self) -> str:
        return f"damaged — {self.file}: {self.reason}"


class Damaged(ValueError):
    """A record that does not have the shape it must have (the message says where)."""


def parse_json(data: bytes) -> Any:
    """Decode UTF-8 JSON; a :class:`Damaged` for bytes that are not UTF-8 or not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Damaged(f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise Damaged(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise Damaged("JSON nested too deeply") from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


_COUNTS = _list_of(lambda x: _int(x) and x >= 0)
# key -> (required, check, what it must be)
_STATUS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "state": (True, lambda v: v in STATES, f"one of {', '.join(STATES)}"),
    "pid": (False, _optional(lambda v: _int(v) and v > 0), "a process id (> 0) or null"),
    "pid_start": (False, _optional(lambda v: _int(v) or isinstance(v, str)), "a start time"),
    "sigterm": (False, lambda v: isinstance(v, bool), "true or false"),
    "host": (False, _optional(lambda v: isinstance(v, str)), "a host name or null"),
    "heartbeat": (False, _optional(_number), "a time in seconds"),
    "created": (False, _optional(_number), "a time in seconds"),
    "started": (False, _optional(_number), "a time in seconds"),
    "finished": (False, _optional(_number), "a time in seconds"),
    "error": (False, _optional(lambda v: isinstance(v, str)), "a message or null"),
    "traceback": (False, _optional(lambda v: isinstance(v, str)), "a traceback or null"),
    "tags": (False, _optional(lambda v: isinstance(v, dict)), "a mapping"),
    "progress": (False, _optional(lambda v: isinstance(v, dict)), "a mapping or null"),
}
_CYCLE: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "cycle": (True, lambda v: _int(v) and v >= 0, "a cycle number"),
    "lam": (True, _number, "a number"),
    "labeled": (True, lambda v: _int(v) and v >= 0, "a count"),
    "accuracy": (True, lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "per_class_accuracy": (True, _list_of(_optional(_number)), "a list of numbers"),
    "labeled_counts": (True, _COUNTS, "a list of counts"),
    "labeled_l1": (True, _number, "a number"),
    "selected_counts": (True, _optional(_COUNTS), "a list of counts or null"),
    "batch_l1": (True, _optional(_number), "a number or null"),
    "timings": (True, lambda v: isinstance(v, dict) and all(map(_number, v.values())), "times"),
    "labeled_counts_after": (False, _optional(_COUNTS), "a list of counts"),
    "selection": (False, _optional(lambda v: isinstance(v, dict)), "a mapping or null"),
    "strategy": (False, lambda v: isinstance(v, str), "a strategy name"),
}


def _check(record: Any, schema: dict[str, tuple[bool, Callable[[Any], bool], str]]) -> None:
    if not isinstance(record, dict):
        raise Damaged(f"a JSON object expected, not {type(record).__name__}")
    for key, (required, check, what) in schema.items():
        if key not in record:
            if required:
                raise Damaged(f"no {key!r}")
        elif not check(record[key]):
            raise Damaged(f"{key}={_short(record[key])} should be {what}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_status(status: Any) -> dict[str, Any]:
    _check(status, _STATUS)
    return dict(status)


def check_cycle(record: Any) -> dict[str, Any]:
    _check(record, _CYCLE)
    return dict(record)
