"""Every bad input through the CLI: exit 2, one line naming the field, no traceback, no run left."""

import json
import os
from pathlib import Path

import pytest

from cbal.cli import main
from cbal.store import Store
from tests import fixtures

BAD_FLAGS = [
    (["--budget", "0"], "--budget"),
    (["--budget", "lots"], "--budget"),
    (["--budget", "2.5"], "--budget"),
    (["--if", "0"], "--imbalance-factor"),
    (["--if", "-0.1"], "--imbalance-factor"),
    (["--if", "1.01"], "--imbalance-factor"),
    (["--if", "inf"], "--imbalance-factor"),
    (["--if", "x"], "--imbalance-factor"),
    (["--profile", "linear"], "--imbalance-profile"),
    (["--strategy", "entropy-cb", "--lam", "-1"], "--lam"),
    (["--strategy", "entropy-cb", "--lam", "nan"], "--lam"),
    (["--strategy", "entropy", "--lam", "2"], "--lam"),
    (["--strategy", "magic"], "--strategy"),
    (["--preset", "imagenet"], "--preset"),
    (["--device", "tpu"], "--device"),
    (["--model", "vgg"], "--model"),
    (["--solver", "gurobi"], "--solver"),
    (["--solver-time-limit", "0"], "--solver-time-limit"),
    (["--solver-mip-gap", "1"], "--solver-mip-gap"),
    (["--solver-mip-gap", "-0.1"], "--solver-mip-gap"),
    (["--cycles", "0"], "--cycles"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--eval-batch-size", "-5"], "--eval-batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--momentum", "-1"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--lr-gamma", "0"], "--lr-gamma"),
    (["--lr-milestones", "500"], "--lr-milestones"),
    (["--lr-milestones", "a,b"], "--lr-milestones"),
    (["--nesterov", "maybe"], "--nesterov"),
    (["--augment", "rotate"], "--augment"),
    (["--dropout", "1"], "--dropout"),
    (["--strategy", "bald", "--dropout", "0"], "--dropout"),
    (["--strategy", "bald", "--mc-passes", "1"], "--mc-passes"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "one"], "--seed"),
    (["--image-size", "0"], "--image-size"),
    (["--test-per-class", "0"], "--test-per-class"),
    (["--initial-labeled", "0"], "--initial-labeled"),
    (["--initial-labeled", "99999"], "--initial-labeled"),
    (["--initial-labeled", "1480"], "--initial-labeled"),  # a balanced set needs 148 of a class
    (["--initial-sampling", "stratified"], "--initial-sampling"),
    (["--mc-source", "noise"], "--mc-source"),
    (["--compat", "original"], "--compat"),
    (["--strategy", "bald", "--mc-source", "batchnorm", "--dropout", "0.3"], "--dropout"),
    (["--budget", "5000"], "--budget"),
    (["--budget", "100", "--cycles", "50"], "--cycles"),
    (["--save-pool-arrays", "perhaps"], "--save-pool-arrays"),
    (["--dataset", "mnist"], "--dataset"),
    (["--dataset", "cifar10"], "--data-dir"),
    (["--dataset", "tinyimagenet"], "--data-dir"),
    (["--colour", "red"], "--colour"),
    (["--budget"], "--budget"),
]


def _check(tmp_path, capsys, argv, needle):
    code = main(["--cache-dir", str(tmp_path / "cache"), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("cbal: error:") and err.count("\n") == 1, err
    assert needle in err, err
    assert "Traceback" not in err
    runs = tmp_path / "cache" / "runs"
    assert not runs.exists() or [p for p in os.listdir(runs) if not p.startswith(".")] == []
    return err


@pytest.mark.parametrize("flags, needle", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag(tmp_path, capsys, flags, needle):
    _check(tmp_path, capsys, ["run", "--preset", "digits", "--device", "cpu", *flags], needle)


def _cifar10(tmp_path: Path) -> Path:
    return fixtures.make_cifar10(tmp_path / "data")


def _batches(root: Path) -> Path:
    return root / "cifar-10-batches-py"


def _bad_batch(kind):
    def make(tmp_path):
        root = _cifar10(tmp_path)
        fixtures.write_bad_cifar_batch(_batches(root) / "data_batch_2", kind)
        return "cifar10", root

    return make


def _missing(name):
    def make(tmp_path):
        root = _cifar10(tmp_path)
        (_batches(root) / name).unlink()
        return "cifar10", root

    return make


def _truncated(tmp_path):
    root = _cifar10(tmp_path)
    fixtures.truncate_file(_batches(root) / "test_batch")
    return "cifar10", root


def _malicious(tmp_path):
    root = _cifar10(tmp_path)
    fixtures.write_malicious_pickle(_batches(root) / "data_batch_1", tmp_path / "pwned")
    return "cifar10", root


def _tiny_no_annotations(tmp_path):
    root = fixtures.make_tiny_imagenet(tmp_path / "data")
    (root / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    return "tinyimagenet", root


def _tiny_no_wnids(tmp_path):
    root = fixtures.make_tiny_imagenet(tmp_path / "data")
    (root / "tiny-imagenet-200" / "wnids.txt").unlink()
    return "tinyimagenet", root


def _folder_with_text_file(tmp_path):
    root = fixtures.make_image_folder(tmp_path / "data")
    (root / "cat" / "notes.png").write_text("not an image")
    return "imagefolder", root


def _folder_empty_class(tmp_path):
    root = fixtures.make_image_folder(tmp_path / "data")
    (root / "bird").mkdir()
    return "imagefolder", root


def _folder_one_class(tmp_path):
    return "imagefolder", fixtures.make_image_folder(tmp_path / "data", classes=("cat",))


def _nowhere(dataset):
    return lambda tmp_path: (dataset, tmp_path / "does-not-exist")


def _empty_dir(dataset):
    def make(tmp_path):
        (tmp_path / "empty").mkdir()
        return dataset, tmp_path / "empty"

    return make


BAD_DATA = {
    "cifar10 missing folder": (_nowhere("cifar10"), "does-not-exist"),
    "cifar100 missing folder": (_nowhere("cifar100"), "does-not-exist"),
    "tiny missing folder": (_nowhere("tinyimagenet"), "does-not-exist"),
    "imagefolder missing folder": (_nowhere("imagefolder"), "does-not-exist"),
    "cifar10 empty folder": (_empty_dir("cifar10"), "cifar-10-batches-py"),
    "cifar100 empty folder": (_empty_dir("cifar100"), "cifar-100-python"),
    "tiny empty folder": (_empty_dir("tinyimagenet"), "tiny-imagenet-200"),
    "imagefolder empty folder": (_empty_dir("imagefolder"), "empty"),
    "cifar wrong keys": (_bad_batch("wrong_keys"), "data_batch_2"),
    "cifar no labels": (_bad_batch("no_labels"), "data_batch_2"),
    "cifar wrong dtype": (_bad_batch("wrong_dtype"), "data_batch_2"),
    "cifar wrong shape": (_bad_batch("wrong_shape"), "data_batch_2"),
    "cifar label out of range": (_bad_batch("label_range"), "data_batch_2"),
    "cifar label count": (_bad_batch("label_length"), "data_batch_2"),
    "cifar not a dict": (_bad_batch("not_dict"), "data_batch_2"),
    "cifar missing batch": (_missing("data_batch_4"), "data_batch_4"),
    "cifar missing meta": (_missing("batches.meta"), "batches.meta"),
    "cifar truncated": (_truncated, "test_batch"),
    "cifar malicious pickle": (_malicious, "data_batch_1"),
    "tiny without annotations": (_tiny_no_annotations, "val_annotations.txt"),
    "tiny without wnids": (_tiny_no_wnids, "wnids.txt"),
    "imagefolder non-image file": (_folder_with_text_file, "notes.png"),
    "imagefolder empty class": (_folder_empty_class, "bird"),
    "imagefolder one class": (_folder_one_class, "class"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_dataset(tmp_path, capsys, case):
    make, needle = BAD_DATA[case]
    dataset, root = make(tmp_path)
    err = _check(
        tmp_path,
        capsys,
        ["run", "--dataset", dataset, "--data-dir", str(root), "--device", "cpu"],
        "--data-dir",
    )
    assert needle in err
    assert not (tmp_path / "pwned").exists()


def _stored_run(tmp_path, mutate):
    store = Store(tmp_path / "cache")
    from cbal.config import preset

    run_id = store.create_run(preset("digits"))
    path = store.run_dir(run_id) / "config.json"
    path.write_text(mutate(path.read_text()))
    return run_id


def _newer(text):
    return json.dumps({**json.loads(text), "version": 99})


def _older(text):
    return json.dumps({**json.loads(text), "version": 0})


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (_newer, "version"),
        (_older, "version"),
        (lambda t: t[:20], "JSON"),
        (lambda t: json.dumps({**json.loads(t), "budget": -3}), "budget"),
    ],
    ids=["newer version", "older version", "truncated json", "bad field"],
)
def test_bad_stored_config_on_resume(tmp_path, capsys, mutate, needle):
    run_id = _stored_run(tmp_path, mutate)
    code = main(["--cache-dir", str(tmp_path / "cache"), "resume", run_id])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["show", "no-such-run"], "not found"),
        (["show", "../../etc"], "run_id"),
        (["resume", "x/y"], "run_id"),
        (["frobnicate"], "frobnicate"),
        ([], "command"),
    ],
)
def test_bad_commands(tmp_path, capsys, argv, needle):
    code = main(["--cache-dir", str(tmp_path / "cache"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
