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
# wall-clock and machine fields differ from run to run by nature; so does the solver's path
# between CPUs (the dual point of a degenerate LP, iteration counts), while its answer (the
# selection, objective, bound) does not
VOLATILE = (
    "timings",
    "solve_time",
    "time",
    "started",
    "finished",
    "dual",
    "dual_evals",
    "lp_iterations",
    "cg_rounds",
    "cold_rounds",
    "lp_columns",
)
# Numbers derived from the network's float32 probabilities (expected counts, balance L1) move
# in their 7th digit between CPUs (other vector kernels): equal to this relative tolerance.
# Selections, counts and accuracies (whole images) must be exactly equal.
FLOAT32_RTOL = 1e-6


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
    _assert_matches(seen["records"], _stable(golden[strategy]["records"]), "records")


def _assert_matches(seen: Any, pinned: Any, where: str) -> None:
    """``seen`` equals ``pinned``: floats to :data:`FLOAT32_RTOL`, all else exactly."""
    if isinstance(pinned, dict) and isinstance(seen, dict):
        assert sorted(seen) == sorted(pinned), where
        for key in pinned:
            _assert_matches(seen[key], pinned[key], f"{where}.{key}")
    elif isinstance(pinned, list) and isinstance(seen, list):
        assert len(seen) == len(pinned), where
        for i, (a, b) in enumerate(zip(seen, pinned, strict=True)):
            _assert_matches(a, b, f"{where}[{i}]")
    elif isinstance(pinned, float) or isinstance(seen, float):
        assert seen == pytest.approx(pinned, rel=FLOAT32_RTOL, abs=1e-9), where
    else:
        assert seen == pinned, where
