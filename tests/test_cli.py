import os
import re
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


def _text(path) -> str:
    """The file's text, "" while it does not exist (or is not yet written)."""
    return path.read_text() if path.exists() else ""


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
    assert run_id in listing.stdout and "done" in listing.stdout and "2/2" in listing.stdout
    assert "0.6" in listing.stdout  # the paper's λ for 10 classes
    show = _cli(tmp_path, "show", run_id)
    assert show.returncode == 0
    rows = [line.split() for line in show.stdout.splitlines()[2:5]]
    assert "network: conv + fully connected net, no dropout; no MC passes" in show.stdout
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


def _help(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_commands_and_every_flag_with_values_and_default(capsys):
    from cbal.strategies import STRATEGIES

    top = _help(capsys)
    assert "SUPPRESS" not in top and "worker" not in top
    for command in ("run", "resume", "list", "show", "sweep", "reproduce", "export"):
        assert re.search(rf"^\s+{command}\s+\S", top, re.M), command
    text = _help(capsys, "run")
    options = text.split("options:")[1].split("strategies (--strategy):")
    flags = re.split(r"\n  (?=-)", options[0])[1:]
    from cbal.cli import _HIDDEN
    from cbal.config import field_names

    assert len(flags) == 3 + len(
        set(field_names()) - _HIDDEN
    )  # --help, --preset, --threads, fields
    for entry in flags[1:]:
        head, _, body = entry.partition(" ")
        assert "default" in body, head  # every flag says its default...
        assert body.strip() and "VALUE" not in entry, head  # ...and what it takes
    assert "--strategy {" + ",".join(STRATEGIES) + "}" in text
    assert "--device {auto,cpu,cuda}" in text and "default auto" in text
    assert "--seed N" in text and "0 … 4294967295" in text
    for s in STRATEGIES.values():  # each strategy with its one-line description
        assert re.search(rf"^  {re.escape(s.name)}\s+{re.escape(s.description)}$", options[1], re.M)
    for command in ("sweep", "reproduce", "export", "resume", "show"):
        sub = _help(capsys, command).split("options:")[1]
        lines = re.split(r"\n  (?=-)", sub)[1:]
        assert all(len(entry.split()) > 2 for entry in lines), command  # a help text each


def test_seed_beyond_32_bits_is_refused_before_anything_starts(tmp_path, capsys):
    code = main(["--cache-dir", str(tmp_path), "run", "--seed", "9" * 130])
    err = capsys.readouterr().err
    assert code == 2 and "--seed" in err and "4294967295" in err
    assert not (tmp_path / "runs").exists() or os.listdir(tmp_path / "runs") == []


@pytest.mark.slow
def test_ctrl_c_cancels_with_a_resume_hint_and_resume_finishes(tmp_path):
    store = Store(tmp_path)
    # the fault hook holds the run inside cycle 1's training (a tiny run's whole training can fall
    # between two heartbeats, so polling status.json for the phase would race)
    mark = tmp_path / "mark"
    env = {**os.environ, "CBAL_FAULT_PAUSE": "train@1", "CBAL_FAULT_MARK": str(mark)}
    cmd = [sys.executable, "-m", "cbal", "--cache-dir", str(tmp_path), "run", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not _text(mark):
        time.sleep(0.05)
    assert _text(mark) == "train@1"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_id = store.list_runs()[0].run_id
    assert store.read_status(run_id)["state"] == "cancelled"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    hint = [line for line in err.replace("\r", "\n").splitlines() if "cancelled" in line]
    assert len(hint) == 1
    assert hint[0].endswith(f"resume with: python -m cbal --cache-dir {tmp_path} resume {run_id}")

    resumed = _cli(tmp_path, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert store.read_status(run_id)["state"] == "done"
    bar = resumed.stderr.replace("\r", "\n")
    assert "3/3 cycles" in bar and not re.search(r"\d\.\d+/3", bar)  # whole cycles only
    assert re.search(r"cycle \d/2 train epoch \d+/8", bar)  # the phase and epoch as text

    again = _cli(tmp_path, "resume", run_id)
    assert again.returncode == 0 and "already done" in again.stdout
    assert again.stderr == ""  # no progress bar for a finished run


def test_run_decodes_the_dataset_once(tmp_path, monkeypatch, capsys):
    from cbal import data

    loads = []
    real = data.load_dataset
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: loads.append(a) or real(*a, **k))
    tiny = [*TINY[:5], "1", "--epochs", "1", "--lr-milestones", "1", "--device", "cpu"]
    code = main(
        ["--cache-dir", str(tmp_path), "run", "--preset", "digits", *tiny, "--threads", "1"]
    )
    assert code == 0, capsys.readouterr().err
    assert len(loads) == 1  # validated and executed on the same decoded images
    (info,) = Store(tmp_path).list_runs()
    assert info.state == "done" and len(info.cycles) == 2
