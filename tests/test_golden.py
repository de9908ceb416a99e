"""Golden records: a short digits run's cycle records and selections, pinned.

Refactors must leave these numbers unchanged. A change that alters them on purpose (a new
training schedule, a different random stream) regenerates the file with
``CBAL_UPDATE_GOLDEN=1 pytest tests/test_golden.py`` and says why in its commit message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store

GOLDEN = Path(__file__).parent / "golden" / "digits_short.json"
STRATEGIES = ("entropy-cb", "kcenter-cb")
SHORT = dict(initial_labeled=40, budget=20, cycles=2, epochs=6, lr_milestones=(4,), device="cpu")
# wall-clock and machine fields differ from run to run by nature
VOLATILE = ("timings", "solve_time", "time", "started", "finished")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _stable(v) for k, v in value.items() if k not in VOLATILE and not k.startswith("t_")
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def _observe(tmp_path: Path, strategy: str) -> dict[str, Any]:
    store = Store(tmp_path / strategy)
    run_id = store.create_run(preset("digits", strategy=strategy, seed=1, **SHORT))
    records = execute(store, run_id, threads=1)
    selected = [
        np.asarray(store.load_cycle_arrays(run_id, k)["selected"]).tolist()
        for k in range(len(records) - 1)
    ]
    return {"records": _stable(records), "selected": selected}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_short_digits_run_matches_golden(tmp_path, strategy):
    seen = _observe(tmp_path, strategy)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("CBAL_UPDATE_GOLDEN"):
        golden[strategy] = seen
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    assert seen["selected"] == golden[strategy]["selected"]
    assert seen["records"] == golden[strategy]["records"]
