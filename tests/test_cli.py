import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cbal.cli import main
from cbal.store import Store

TINY = [
    "--initial-labeled",
    "40",
    "--budget",
    "20",
    "--cycles",
    "2",
    "--epochs",
    "8",
    "--lr-milestones",
    "6",
    "--device",
    "cpu",
]


def _cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "cbal", "--cache-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_run_list_show(tmp_path):
    out = _cli(
        tmp_path, "run", "--preset", "digits", "--strategy", "entropy-cb", "--seed", "0", *TINY
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split("run id: ")[1].split()[0]
    listing = _cli(tmp_path, "list")
    assert run_id in listing.stdout and "done" in listing.stdout and "3/3" in listing.stdout
    assert "0.6" in listing.stdout  # the paper's λ for 10 classes
    show = _cli(tmp_path, "show", run_id)
    assert show.returncode == 0
    rows = [line.split() for line in show.stdout.splitlines()[2:5]]
    assert "network: small CNN, no dropout; no MC passes" in show.stdout
    assert [r[0] for r in rows] == ["0", "1", "2"] and [r[1] for r in rows] == ["40", "60", "80"]
    assert rows[0][5] == "optimal"


@pytest.mark.parametrize(
    "args, flag",
    [
        (["run", "--budget", "0"], "--budget"),
        (["run", "--budget", "lots"], "--budget"),
        (["run", "--if", "0"], "--imbalance-factor"),
        (["run", "--if", "1.5"], "--imbalance-factor"),
        (["run", "--lam", "-1", "--strategy", "entropy-cb"], "--lam"),
        (["run", "--lam", "nan", "--strategy", "entropy-cb"], "--lam"),
        (["run", "--strategy", "magic"], "--strategy"),
        (["run", "--preset", "imagenet"], "--preset"),
        (["run", "--device", "tpu"], "--device"),
        (["run", "--dataset", "cifar10"], "--data-dir"),
        (["run", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "--data-dir"),
        (["run", "--budget", "100", "--cycles", "50"], "--cycles"),
        (["run", "--colour", "red"], "--colour"),
        (["show", "no-such-run"], "no-such-run"),
        (["show", "../../etc"], "run_id"),
        (["resume", "missing"], "missing"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, flag):
    code = main(["--cache-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cbal: error:") and flag in err
    assert "Traceback" not in err
    runs = tmp_path / "runs"
    assert not runs.exists() or os.listdir(runs) == []


def test_cuda_without_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["--cache-dir", str(tmp_path), "run", "--device", "cuda"]) == 2
    assert "--device" in capsys.readouterr().err


def _records(store, run_id):
    keep = (
        "cycle",
        "labeled",
        "accuracy",
        "per_class_accuracy",
        "labeled_counts",
        "selected_counts",
        "batch_l1",
        "labeled_l1",
    )
    out = []
    for k, r in enumerate(store.read_cycles(run_id)):
        arrays = store.load_cycle_arrays(run_id, k)
        out.append(
            (
                {key: r.get(key) for key in keep},
                arrays["selected"].tolist() if "selected" in arrays else None,
            )
        )
    return out


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    args = [
        "run",
        "--preset",
        "digits",
        "--strategy",
        "bald-cb",
        "--seed",
        "1",
        "--initial-labeled",
        "40",
        "--budget",
        "20",
        "--cycles",
        "3",
        "--epochs",
        "10",
        "--lr-milestones",
        "8",
        "--device",
        "cpu",
    ]
    ref = _cli(tmp_path / "ref", *args)
    assert ref.returncode == 0, ref.stderr
    ref_store = Store(tmp_path / "ref")
    ref_id = ref_store.list_runs()[0].run_id

    store = Store(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cbal", "--cache-dir", str(store.root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        runs = store.list_runs() if store.runs_dir.exists() else []
        if runs and len(runs[0].cycles) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_id = store.list_runs()[0].run_id
    done_before = len(store.read_cycles(run_id))
    assert 2 <= done_before < 4
    assert store.run_info(run_id).state == "failed"  # its process is gone

    out = _cli(store.root, "resume", run_id)
    assert out.returncode == 0, out.stderr
    assert store.read_status(run_id)["state"] == "done"
    got, want = _records(store, run_id), _records(ref_store, ref_id)
    assert len(got) == 4
    assert got == want
    np.testing.assert_array_equal(
        store.load_cycle_arrays(run_id, 2)["probs"], ref_store.load_cycle_arrays(ref_id, 2)["probs"]
    )
