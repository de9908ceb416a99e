"""The paper's claims checked on hand-made records, and the reproduce grid end to end (slow)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cbal.config import preset
from cbal.reproduce import (
    GRID_STRATEGIES,
    PAPER_IFS,
    accuracy_table,
    check_claims,
    reproduce_spec,
    write_report,
)
from cbal.store import RunInfo
from cbal.sweep import expand


def _run(strategy, imf, seed, acc, batch_l1):
    cycles = [
        {
            "cycle": k,
            "accuracy": a,
            "labeled": 50 + 25 * k,
            "batch_l1": b,
            "labeled_l1": 0.1 * (k + 1),
        }
        for k, (a, b) in enumerate(zip(acc, batch_l1 + [None], strict=True))
    ]
    cfg = preset("digits", strategy=strategy, imbalance_factor=imf, seed=seed)
    return RunInfo(f"r-{strategy}-{imf}-{seed}", cfg, {"state": "done"}, cycles)


def _find(claims, prefix, scope):
    (claim,) = [c for c in claims if c.claim.startswith(prefix) and c.scope == scope]
    return claim


def test_claims_on_hand_made_runs():
    runs = [
        _run("entropy", 0.1, 0, [0.5, 0.6, 0.7], [0.6, 0.5]),
        _run("entropy", 0.1, 1, [0.5, 0.62, 0.68], [0.7, 0.4]),
        _run("entropy-cb", 0.1, 0, [0.5, 0.66, 0.74], [0.3, 0.45]),
        _run("entropy-cb", 0.1, 1, [0.5, 0.64, 0.72], [0.2, 0.5]),
        _run("kcenter-cb", 0.3, 0, [0.5, 0.7, 0.8], [0.2, 0.2]),
        _run("coreset", 0.3, 0, [0.5, 0.6, 0.85], [0.5, 0.5]),
    ]
    claims = check_claims(runs)
    l1 = _find(claims, "CB variants select", "entropy-cb vs entropy, IF=0.1")
    # mean batch L1 per cycle: cb (0.25, 0.475) vs base (0.65, 0.45): lower only in cycle 0
    assert l1.verdict == "disagrees" and "lower in 1/2 cycles" in l1.evidence
    ent = _find(claims, "Entropy-CB ≥", "entropy-cb vs entropy, IF=0.1")
    # mean over cycles 1..2: cb (0.70, 0.68) -> 0.69; base (0.65, 0.65) -> 0.65
    assert ent.verdict == "agrees" and "69.00%" in ent.evidence and "65.00%" in ent.evidence
    core = _find(claims, "CoreSet", "kcenter-cb vs coreset, IF=0.3")
    # kcenter-cb 0.75 vs coreset 0.725 over cycles 1..2
    assert core.verdict == "agrees" and "75.00%" in core.evidence
    assert _find(claims, "CoreSet", "kcenter-cb vs coreset, IF=0.1").verdict == "not enough runs"
    assert (
        _find(claims, "CB variants select", "bald-cb vs bald, IF=0.1").verdict == "not enough runs"
    )
    # every hand-made run has the same labeled-set L1 curve: never lower
    lab = _find(claims, "CB variants keep", "entropy-cb vs entropy, IF=0.1")
    assert lab.verdict == "disagrees" and "lower in 0/3 cycles" in lab.evidence


def test_unfinished_runs_are_ignored():
    runs = [_run("entropy", 0.1, 0, [0.5, 0.6], [0.5])]
    failed = _run("entropy-cb", 0.1, 0, [0.5, 0.9], [0.0])
    failed = RunInfo(failed.run_id, failed.config, {"state": "failed"}, failed.cycles)
    ent = _find(check_claims([*runs, failed]), "Entropy-CB ≥", "entropy-cb vs entropy, IF=0.1")
    assert ent.verdict == "not enough runs"


def test_accuracy_table_and_report(tmp_path):
    runs = [
        _run("entropy", 0.1, s, [0.5, 0.6 + 0.02 * s, 0.7 + 0.02 * s], [0.6, 0.5]) for s in (0, 1)
    ]
    (row,) = accuracy_table(runs)
    assert row["seeds"] == 2 and row["labels"] == 100
    assert row["final_accuracy"] == f"71.00% ± {np.std([0.7, 0.72], ddof=1):.2%}"
    path = write_report(runs, tmp_path, "test")
    text = path.read_text()
    assert "| 0.1 | entropy | 2 |" in text and "0 of 9 checks agree" in text
    data = json.loads((tmp_path / "claims.json").read_text())
    assert data["table"][0]["strategy"] == "entropy"


def test_the_grid_is_the_papers():
    sweep = expand(reproduce_spec("digits"))
    assert len(sweep) == len(GRID_STRATEGIES) * len(PAPER_IFS) * 3
    assert {c.strategy for c in sweep.configs} == set(GRID_STRATEGIES)
    assert {c.imbalance_factor for c in sweep.configs} == set(PAPER_IFS)
    assert {c.seed for c in sweep.configs} == {0, 1, 2}


@pytest.mark.slow
def test_reproduce_cli_fast_subset(tmp_path):
    tiny = ["initial_labeled=40", "budget=20", "cycles=2", "epochs=5", "lr_milestones=4"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cbal",
            "--cache-dir",
            str(tmp_path),
            "reproduce",
            "--preset",
            "digits",
            "--strategies",
            "entropy,entropy-cb",
            "--seeds",
            "0,1",
            "--ifs",
            "0.1",
            "--n-jobs",
            "2",
            "--out",
            str(tmp_path / "report"),
            *[a for s in [*tiny, "device=cpu"] for a in ("--set", s)],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "report" / "claims.json").read_text())
    verdicts = {(c["claim"][:10], c["scope"]): c["verdict"] for c in data["claims"]}
    assert verdicts[("CB variant", "bald-cb vs bald, IF=0.1")] == "not enough runs"
    assert verdicts[("Entropy-CB", "entropy-cb vs entropy, IF=0.1")] in ("agrees", "disagrees")
    assert [row["seeds"] for row in data["table"]] == [2, 2]
    assert "report.md" in out.stdout


def test_claims_cover_a_pair_beyond_the_paper_when_its_runs_are_there():
    paper = {
        (c.scope.split(",")[0]) for c in check_claims([_run("entropy", 0.1, 0, [0.5, 0.6], [0.4])])
    }
    assert paper == {
        "entropy-cb vs entropy",
        "bald-cb vs bald",
        "kcenter-cb vs kcenter",
        "kcenter-cb vs coreset",
    }  # the grid's pairs only
    runs = [_run("margin", 0.1, 0, [0.5, 0.6], [0.6]), _run("margin-cb", 0.1, 0, [0.5, 0.7], [0.2])]
    (claim,) = [
        c
        for c in check_claims(runs)
        if c.scope == "margin-cb vs margin, IF=0.1" and c.claim.startswith("CB variants select")
    ]
    assert claim.verdict == "agrees" and "lower in 1/1 cycles" in claim.evidence
