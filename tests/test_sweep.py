"""Sweeps: spec expansion, local joblib and Dask execution, resume, failures and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cbal import runner
from cbal import sweep as sw
from cbal.cli import main
from cbal.config import ConfigError
from cbal.data import DataError
from cbal.loop import Cancelled, execute
from cbal.store import Store
from cbal.strategies import STRATEGIES

TINY = dict(initial_labeled=40, budget=20, cycles=1, epochs=5, lr_milestones=[4], device="cpu")
TINY_SETS = [f"{k}={v[0] if isinstance(v, list) else v}" for k, v in TINY.items()]
TINY_FLAGS = [x for s in TINY_SETS for x in ("--set", s)]

YAML_SPEC = """\
name: grid
preset: digits
base:
  initial_labeled: 40
  budget: 20
  cycles: 1
  epochs: 5
  lr_milestones: [4]
  device: cpu
grid:
  strategy: [entropy, entropy-cb, kcenter-cb]
  seed: [0, 1, 2]
  imbalance_factor: [1, 0.1]
  lam: {entropy-cb: 0.6, kcenter-cb: 5}
"""


def _spec(name: str = "t", **grid: object) -> sw.SweepSpec:
    base = {k: v for k, v in TINY.items() if k not in grid}
    return sw.SweepSpec(name=name, preset="digits", base=base, grid=grid)


def _no_runs(root: Path) -> bool:
    runs = root / "runs"
    return not runs.exists() or not [p for p in os.listdir(runs) if not p.startswith(".")]


def _snapshot(store: Store, sweep_id: str) -> dict[str, tuple[str, object]]:
    """run id → (cycles.jsonl text, finished time) of the sweep's runs."""
    return {
        info.run_id: (
            (store.run_dir(info.run_id) / "cycles.jsonl").read_text(),
            info.status.get("finished"),
        )
        for info in sw.sweep_runs(store, sweep_id)
    }


# -- expansion ----------------------------------------------------------------------------------
def test_yaml_json_and_flags_expand_to_the_same_runs(tmp_path):
    (tmp_path / "s.yaml").write_text(YAML_SPEC)
    import yaml

    (tmp_path / "s.json").write_text(json.dumps(yaml.safe_load(YAML_SPEC)))
    flags = sw.spec_from_flags(
        name="grid",
        preset="digits",
        strategies="entropy,entropy-cb,kcenter-cb",
        seeds="0,1,2",
        ifs="1,0.1",
        lams="entropy-cb=0.6,kcenter-cb=5",
        sets=TINY_SETS,
    )
    sweeps = [
        sw.expand(s) for s in (sw.load_spec(tmp_path / "s.yaml"), sw.load_spec(tmp_path / "s.json"))
    ]
    sweeps.append(sw.expand(flags))
    runs = [[(p.key, p.config) for p in s.points] for s in sweeps]
    assert runs[0] == runs[1] == runs[2]
    assert len({s.sweep_id for s in sweeps}) == 1
    sweep = sweeps[0]
    assert len(sweep) == 3 * 3 * 2
    assert len({p.key for p in sweep.points}) == 18
    # seed varies fastest, λ only where the strategy has one
    assert [p.key for p in sweep.points[:4]] == [
        "imbalance_factor=1,strategy=entropy,seed=0",
        "imbalance_factor=1,strategy=entropy,seed=1",
        "imbalance_factor=1,strategy=entropy,seed=2",
        "imbalance_factor=1,strategy=entropy-cb,lam=0.6,seed=0",
    ]
    lams = {(p.config.strategy, p.config.lam) for p in sweep.points}
    assert lams == {("entropy", None), ("entropy-cb", 0.6), ("kcenter-cb", 5.0)}
    for p in sweep.points:
        assert (p.config.epochs, p.config.lr_milestones, p.config.preset) == (5, (4,), "digits")
    # flags on top of a file replace its entries
    mixed = sw.expand(sw.spec_from_flags(sw.load_spec(tmp_path / "s.yaml"), seeds="5"))
    assert len(mixed) == 6 and {p.config.seed for p in mixed.points} == {5}
    assert _no_runs(tmp_path)


@pytest.mark.parametrize(
    "grid, size",
    [
        ({}, 1),
        ({"seed": [0, 1, 2]}, 3),
        ({"strategy": ["entropy", "entropy-cb"], "lam": [0.3, 0.6, 2]}, 4),
        ({"strategy": ["entropy-cb", "kcenter-cb"], "lam": {"entropy-cb": [0.3, 0.6]}}, 3),
        ({"strategy": "random", "seed": [0, 1], "budget": [10, 20], "imbalance_factor": 0.5}, 4),
    ],
)
def test_grid_sizes(grid, size):
    sweep = sw.expand(_spec(**grid))
    assert len(sweep) == size
    assert len({p.key for p in sweep.points}) == size
    assert len({p.config for p in sweep.points}) == size


def test_keys_order_and_per_dataset_data_dir():
    spec = sw.SweepSpec(
        preset="digits",
        base={**_spec(budget=[]).base, "data_dir": {"imagefolder": "/data/imgs"}},
        grid={"dataset": ["digits", "imagefolder"], "budget": [10, 20], "seed": [0, 1]},
    )
    sweep = sw.expand(spec)
    assert [p.key for p in sweep.points[:3]] == [
        "dataset=digits,budget=10,seed=0",
        "dataset=digits,budget=10,seed=1",
        "dataset=digits,budget=20,seed=0",
    ]
    dirs = {(p.config.dataset, p.config.data_dir) for p in sweep.points}
    assert dirs == {("digits", None), ("imagefolder", "/data/imgs")}
    assert sw.expand(sw.SweepSpec()).points[0].key == "default"


def test_sweep_id_is_stable():
    a = sw.expand(_spec(strategy=["entropy", "random"], seed=[0, 1]))
    b = sw.expand(_spec(strategy=["random", "entropy"], seed=[1, 0]))
    assert a.sweep_id == b.sweep_id and a.sweep_id.startswith("sw-")
    assert sw.expand(_spec(name="other", strategy=["entropy", "random"], seed=[0, 1])).sweep_id != (
        a.sweep_id
    )
    assert sw.expand(_spec(strategy=["entropy", "random"], seed=[0, 2])).sweep_id != a.sweep_id


BAD_SPECS = [
    ({"base": {"epoch": 5}}, "epoch"),
    ({"grid": {"seed": [0, "x"]}}, "seed"),
    ({"grid": {"imbalance_factor": [1, 2]}}, "imbalance_factor"),
    ({"grid": {"strategy": ["entropy", "nope"]}}, "strategy"),
    ({"grid": {"strategy": ["entropy"], "lam": {"entropy": 1}}}, "lam"),
    ({"grid": {"strategy": ["entropy-cb"], "lam": {"kcenter-cb": 1}}}, "lam"),
    ({"grid": {"lam": [-1]}, "base": {"strategy": "entropy-cb"}}, "lam"),
    ({"grid": {"strategy": ["entropy", "random"], "lam": [1]}}, "lam"),
    ({"grid": {"seed": []}}, "seed"),
    ({"grid": {"seed": [0, 0]}}, "seed"),
    ({"grid": {"seed": [0, 1]}, "base": {"seed": 2}}, "seed"),
    ({"grid": {"version": [1]}}, "version"),
    ({"grdi": {"seed": [0]}}, "grdi"),
    ({"base": [1, 2]}, "base"),
    ({"preset": "cifar"}, "preset"),
    ({"base": {"data_dir": {"cifar11": "/x"}}}, "data_dir"),
    ({"base": {"budget": 500, "cycles": 2}}, "cycles"),  # checked against the pool
    ({"base": {"initial_labeled": 5000}}, "initial_labeled"),
]


@pytest.mark.parametrize("patch, field", BAD_SPECS, ids=[f for _, f in BAD_SPECS])
def test_bad_spec_names_the_field_and_creates_nothing(tmp_path, patch, field):
    data = {"preset": "digits", "base": dict(TINY), "grid": {}}
    for part, value in patch.items():
        merge = isinstance(data.get(part), dict) and isinstance(value, dict)
        data[part] = {**data[part], **value} if merge else value
    store = Store(tmp_path)
    with pytest.raises(ConfigError) as err:
        sw.run_sweep(store, sw.expand(sw.SweepSpec.from_dict(data)))
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}=")
    assert _no_runs(tmp_path)


def test_missing_data_fails_before_anything_is_created(tmp_path):
    spec = sw.SweepSpec(
        base={**TINY, "dataset": "imagefolder", "data_dir": str(tmp_path / "nowhere")}
    )
    with pytest.raises(DataError):
        sw.run_sweep(Store(tmp_path / "cache"), sw.expand(spec))
    assert _no_runs(tmp_path / "cache")


def test_gpu_slots_limit_runs_per_device(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(sw, "_GPU_POLL_S", 0.02)
    store = Store(tmp_path)
    got: list[int] = []
    with sw._gpu_slot(store, 1) as a, sw._gpu_slot(store, 1) as b:
        assert {a, b} == {0, 1}
        waiter = threading.Thread(target=lambda: got.append(sw._gpu_slot(store, 1).__enter__()))
        waiter.start()
        time.sleep(0.3)
        assert got == []  # both devices busy: the third run waits
    waiter.join(5)
    assert got in ([0], [1])
    with sw._gpu_slot(store, 2) as c, sw._gpu_slot(store, 2) as d:
        assert {c, d} <= {0, 1}  # two per device allowed (one slot is still held by the waiter)


def test_sweep_runs_share_the_slots_of_background_runs(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("CBAL_MAX_CONCURRENT", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(sw, "_GPU_POLL_S", 0.02)
    store = Store(tmp_path)
    got: list[int] = []
    with runner.slot(store) as held:  # a dashboard launch's run is training
        assert held == 0
        waiter = threading.Thread(target=lambda: got.append(sw._gpu_slot(store, 1).__enter__()))
        waiter.start()
        time.sleep(0.3)
        assert got == []  # the sweep's run waits for the same slot
    waiter.join(5)
    assert got == [0]


# -- running sweeps in this process ---------------------------------------------------------------
def test_rerun_resumes_interrupted_runs_and_creates_only_missing(tmp_path):
    store = Store(tmp_path)
    sweep = sw.expand(_spec(strategy=["entropy", "random", "entropy-cb"], cycles=[2]))
    ids = sw.create_runs(store, sweep)
    assert sw.create_runs(store, sweep) == ids  # idempotent
    cancelled, died, fresh = ids.values()

    def stop_at_cycle_1(event):
        if event["cycle"] == 1:
            raise Cancelled("test")

    for run_id in (cancelled, died):
        with pytest.raises(Cancelled):
            execute(store, run_id, stop_at_cycle_1)
        assert len(store.read_cycles(run_id)) == 1
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.write_status(died, state="running", pid=dead.pid)  # the process died mid-run
    first = {r: store.read_cycles(r)[0] for r in (cancelled, died)}

    actions = {r.run_id: r.action for r in sw.plan(store, sweep)}
    assert actions == {cancelled: "resume", died: "resume", fresh: "run"}
    seen: list[str] = []
    summary = sw.run_sweep(store, sweep, on_result=lambda row: seen.append(row.run_id))
    assert summary.ok and (summary.created, summary.executed) == (0, 3)
    assert sorted(seen) == sorted(ids.values())
    assert [r.run_id for r in summary.rows] == list(ids.values())
    for row in summary.rows:
        cycles = store.read_cycles(row.run_id)
        assert [c["cycle"] for c in cycles] == [0, 1, 2]
        assert row.accuracy == cycles[-1]["accuracy"] and row.state == "done"
    for run_id, record in first.items():
        assert store.read_cycles(run_id)[0] == record  # resumed, not restarted

    # a bigger sweep with the same name is a new sweep; the same one again adds a seed's runs only
    more = sw.expand(_spec(strategy=["entropy", "random", "entropy-cb"], cycles=[2], seed=[0]))
    assert more.sweep_id != sweep.sweep_id
    assert [r.action for r in sw.plan(store, more)] == ["create"] * 3


def test_failed_run_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    def boom(ctx, budget):
        raise RuntimeError("strategy exploded")

    monkeypatch.setitem(
        STRATEGIES, "random", dataclasses.replace(STRATEGIES["random"], select=boom)
    )
    store = Store(tmp_path)
    sweep = sw.expand(_spec(strategy=["random", "entropy"]))
    summary = sw.run_sweep(store, sweep)
    rows = {r.config.strategy: r for r in summary.rows}
    assert not summary.ok and summary.counts() == {"failed": 1, "done": 1}
    assert rows["entropy"].state == "done" and rows["entropy"].accuracy is not None
    assert rows["random"].state == "failed" and "strategy exploded" in rows["random"].error
    assert "strategy exploded" in store.read_status(rows["random"].run_id)["error"]
    assert {r.run_id: r.action for r in sw.plan(store, sweep, retry_failed=False)} == {
        rows["random"].run_id: "skip",
        rows["entropy"].run_id: "skip",
    }
    assert sw.plan(store, sweep)[0].action == "resume"  # retried by default


# -- processes ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_local_joblib_sweep_runs_in_parallel_and_reruns_nothing(tmp_path):
    store = Store(tmp_path)
    sweep = sw.expand(_spec(strategy=["entropy", "random"]))
    summary = sw.run_sweep(store, sweep, n_jobs=2)
    assert summary.ok and (summary.created, summary.executed) == (2, 2)
    infos = sw.sweep_runs(store, sweep.sweep_id)
    assert {i.run_id for i in infos} == {r.run_id for r in summary.rows}
    for info in infos:
        tags = info.status["tags"]
        assert tags["sweep"] == tags["group"] == sweep.sweep_id
        assert sweep.point(tags["sweep_key"]).config == info.config
        assert len(info.cycles) == 2
    # two worker processes: the runs overlapped in time
    starts = [i.status["started"] for i in infos]
    ends = [i.status["finished"] for i in infos]
    assert max(starts) < min(ends)

    before = _snapshot(store, sweep.sweep_id)
    again = sw.run_sweep(store, sweep, n_jobs=2)
    assert again.ok and (again.created, again.executed) == (0, 0)
    assert _snapshot(store, sweep.sweep_id) == before


@pytest.mark.slow
def test_dask_cluster_runs_the_sweep(tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        argv = ["--cache-dir", str(tmp_path), "sweep", "--preset", "digits"]
        argv += ["--strategies", "entropy,entropy-cb", "--seeds", "0", *TINY_FLAGS]
        code = main([*argv, "--scheduler", cluster.scheduler_address])
    out = capsys.readouterr().out
    assert code == 0, out
    sweep = sw.expand(
        sw.spec_from_flags(
            preset="digits", strategies="entropy,entropy-cb", seeds="0", sets=TINY_SETS
        )
    )
    infos = sw.sweep_runs(Store(tmp_path), sweep.sweep_id)
    assert len(infos) == 2 and all(i.state == "done" and len(i.cycles) == 2 for i in infos)
    assert f"sweep {sweep.sweep_id}: 2 done (2 created, 2 ran)" in out
    assert out.count("\ndone ") + out.startswith("done ") == 2  # one line per finished run


# -- CLI ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_dry_run_prints_the_grid(tmp_path):
    args = ["--strategies", "entropy,entropy-cb", "--seeds", "0,1", "--ifs", "1,0.1"]
    args += ["--lams", "entropy-cb=0.6,entropy-cb=2", *TINY_FLAGS]
    out = subprocess.run(
        [sys.executable, "-m", "cbal", "--cache-dir", str(tmp_path), "sweep", "--preset", "digits"]
        + args
        + ["--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    sweep = sw.expand(
        sw.spec_from_flags(
            preset="digits",
            strategies="entropy,entropy-cb",
            seeds="0,1",
            ifs="1,0.1",
            lams="entropy-cb=0.6,entropy-cb=2",
            sets=TINY_SETS,
        )
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"sweep {sweep.sweep_id} (sweep): 12 runs: 12 to start")
    assert lines[1].split()[:3] == ["key", "run", "id"]
    assert [line.split()[0] for line in lines[2:]] == [p.key for p in sweep.points]
    assert all(line.split()[-1] == "create" for line in lines[2:])
    assert _no_runs(tmp_path)


BAD_FLAGS = [
    (["--seeds", "0,x"], "--seeds"),
    (["--ifs", "0.1,3"], "--ifs"),
    (["--strategies", "entropy,nope"], "--strategies"),
    (["--strategies", "entropy", "--lams", "entropy=1"], "--lams"),
    (["--lams", "entropy-cb=1,2"], "--lams"),
    (["--set", "epoch=3"], "--set"),
    (["--set", "epochs"], "--set"),
    (["--set", "budget=1000"], "--set"),
    (["--n-jobs", "0"], "--n-jobs"),
    (["--n-jobs", "two"], "--n-jobs"),
    (["--gpu-jobs", "0"], "--gpu-jobs"),
    (["--scheduler", "localhost"], "--scheduler"),
    (["--preset", "cifar"], "--preset"),
    (["--bogus"], "--bogus"),
    (["missing.yaml"], "missing.yaml"),
]


@pytest.mark.parametrize("flags, needle", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_cli_bad_flag_exits_2_with_one_line(tmp_path, capsys, flags, needle):
    argv = ["--cache-dir", str(tmp_path), "sweep", "--preset", "digits", *TINY_FLAGS, *flags]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("cbal: error: "), captured.err
    head = captured.err.removeprefix("cbal: error: ").removeprefix("argument ")
    assert head.startswith(needle) or (needle == "--bogus" and needle in head), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""
    assert _no_runs(tmp_path)


def test_cli_bad_value_in_spec_file_names_the_file(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(YAML_SPEC.replace("seed: [0, 1, 2]", "seed: [0, one]"))
    code = main(["--cache-dir", str(tmp_path / "cache"), "sweep", str(spec), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"cbal: error: {spec}: seed='one'") and err.count("\n") == 1
    spec.write_text("grid: [unclosed")
    assert main(["--cache-dir", str(tmp_path / "cache"), "sweep", str(spec)]) == 2
    assert "valid YAML" in capsys.readouterr().err
