"""Tests of cbal.data: imbalance profiles, pools, and every loader on official-format fixtures."""

from __future__ import annotations

import math
import pickle
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbal.data import (
    CIFAR_URL,
    DATASETS,
    TINY_IMAGENET_URL,
    DataError,
    Dataset,
    Pool,
    build_pool,
    imbalanced_counts,
    load_cifar,
    load_dataset,
    load_digits_dataset,
    load_image_folder,
    load_tiny_imagenet,
)
from tests.fixtures import (
    CIFAR10_NAMES,
    TINY_WNIDS,
    cifar100_names,
    make_cifar10,
    make_cifar100,
    make_image_folder,
    make_tiny_imagenet,
    truncate_file,
    write_bad_cifar_batch,
    write_malicious_pickle,
)

C10 = "cifar-10-batches-py"
C100 = "cifar-100-python"
TINY = "tiny-imagenet-200"


def _raw_pickle(path: Path) -> dict:
    # Our own fixture files: plain unpickling is fine here.
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


# --------------------------------------------------------------------------------------------
# imbalanced_counts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_max", "c", "factor", "profile", "expected"),
    [
        # The paper's CIFAR-10 setting.
        (4500, 10, 0.1, "step", [4500] * 5 + [450] * 5),
        (4500, 10, 0.3, "step", [4500] * 5 + [1350] * 5),
        (4500, 10, 1, "step", [4500] * 10),
        (450, 100, 0.1, "step", [450] * 50 + [45] * 50),
        (450, 100, 0.01, "step", [450] * 50 + [4] * 50),  # 4.5 -> 4
        (225, 200, 0.1, "step", [225] * 100 + [22] * 100),
        (7, 3, 0.5, "step", [7, 3, 3]),  # floor(3/2) = 1 head class
        (100, 1, 0.3, "step", [30]),  # C = 1: the single class is a "rest" class
        (100, 2, 0.3, "step", [100, 30]),
        # exp by hand: 100 * 0.01 ** (c/2) = 100, 10, 1
        (100, 3, 0.01, "exp", [100, 10, 1]),
        # 1000 * 0.1 ** (c/4) = 1000, 562.34, 316.23, 177.83, 100
        (1000, 5, 0.1, "exp", [1000, 562, 316, 177, 100]),
        (4500, 2, 0.1, "exp", [4500, 450]),
        (100, 1, 0.01, "exp", [100]),
        (0, 4, 0.5, "exp", [0, 0, 0, 0]),
    ],
)
def test_imbalanced_counts_hand_checked(n_max, c, factor, profile, expected):
    counts = imbalanced_counts(n_max, c, factor, profile)
    assert counts.dtype == np.int64
    assert counts.tolist() == expected


def test_imbalanced_counts_default_profile_is_step():
    assert imbalanced_counts(4500, 10, 0.1).tolist() == [4500] * 5 + [450] * 5


@pytest.mark.parametrize("profile", ["step", "exp"])
@pytest.mark.parametrize("c", [1, 2, 10, 100, 200])
@pytest.mark.parametrize("factor", [1, 0.3, 0.1, 0.01])
def test_imbalanced_counts_grid(profile, c, factor):
    n_max = 45000 // c
    counts = imbalanced_counts(n_max, c, factor, profile)
    assert counts.shape == (c,)
    assert np.all(np.diff(counts) <= 0), "counts must not increase with the class index"
    low = math.floor(Fraction(n_max) * Fraction(str(factor)))
    if c == 1:
        assert counts.tolist() == ([low] if profile == "step" else [n_max])
        return
    assert counts[0] == n_max
    assert counts[-1] == low
    if factor == 1:
        assert np.all(counts == n_max)
    if profile == "step":
        assert np.all(counts[: c // 2] == n_max)
        assert np.all(counts[c // 2 :] == low)
    else:
        expected = [math.floor(n_max * factor ** (k / (c - 1)) + 1e-7) for k in range(c)]
        assert counts.tolist() == expected


@pytest.mark.parametrize("factor", ["0.1", "0.3", "0.7", "0.01", "0.03"])
def test_step_floor_is_exact_despite_float_noise(factor):
    # floor(n * IF) computed exactly with fractions, for every n_max up to 5000.
    exact = Fraction(factor)
    for n_max in range(0, 5001):
        got = imbalanced_counts(n_max, 2, float(factor), "step")[1]
        assert got == math.floor(n_max * exact), (n_max, factor)


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), float("inf"), "0.1x", None, True])
def test_imbalanced_counts_rejects_bad_factor(bad):
    with pytest.raises(ValueError, match=r"imbalance_factor.*\(0, 1\]"):
        imbalanced_counts(100, 10, bad)


def test_imbalanced_counts_rejects_bad_profile_and_sizes():
    with pytest.raises(ValueError, match=r"profile.*'step', 'exp'"):
        imbalanced_counts(100, 10, 0.1, "linear")
    with pytest.raises(ValueError, match="n_max"):
        imbalanced_counts(-1, 10, 0.1)
    with pytest.raises(ValueError, match="num_classes"):
        imbalanced_counts(100, 0, 0.1)
    with pytest.raises(ValueError, match="n_max"):
        imbalanced_counts(100.0, 10, 0.1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# build_pool
# --------------------------------------------------------------------------------------------


def _balanced_labels(per_class: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(c), per_class))


def _check_pool(pool: Pool, y: np.ndarray, c: int, initial: int) -> None:
    assert pool.labeled.dtype == np.int64 and pool.unlabeled.dtype == np.int64
    assert pool.labeled.size == initial
    assert np.unique(pool.labeled).size == initial
    assert np.unique(pool.unlabeled).size == pool.unlabeled.size
    assert np.intersect1d(pool.labeled, pool.unlabeled).size == 0
    assert np.all(np.diff(pool.labeled) > 0) and np.all(np.diff(pool.unlabeled) > 0)
    assert pool.unlabeled.min(initial=0) >= 0 and pool.unlabeled.max(initial=0) < y.size
    assert np.array_equal(np.bincount(y[pool.unlabeled], minlength=c), pool.pool_counts)
    assert np.all(pool.pool_counts <= pool.target_counts)


def test_build_pool_paper_protocol_cifar10_sizes():
    y = _balanced_labels(5000, 10)
    pool = build_pool(y, 10, 5000, 0.1, "step", seed=3)
    _check_pool(pool, y, 10, 5000)
    assert pool.target_counts.tolist() == [4500] * 5 + [450] * 5
    # Head classes: min(4500, what the random initial draw left); tail classes: exactly 450.
    remaining = np.bincount(np.delete(y, pool.labeled), minlength=10)
    assert pool.pool_counts.tolist() == np.minimum(remaining, pool.target_counts).tolist()
    assert pool.pool_counts[5:].tolist() == [450] * 5
    # The initial set is a uniform draw from the balanced set: every class is represented.
    assert np.all(np.bincount(y[pool.labeled], minlength=10) > 350)


@pytest.mark.parametrize("profile", ["step", "exp"])
def test_build_pool_is_deterministic_and_seed_dependent(profile):
    y = _balanced_labels(100, 10)
    a = build_pool(y, 10, 100, 0.3, profile, seed=7)
    b = build_pool(y, 10, 100, 0.3, profile, seed=7)
    c = build_pool(y, 10, 100, 0.3, profile, seed=8)
    for name in ("labeled", "unlabeled", "target_counts", "pool_counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.labeled, c.labeled)
    assert not np.array_equal(a.unlabeled, c.unlabeled)
    _check_pool(a, y, 10, 100)
    assert a.target_counts.tolist() == imbalanced_counts(90, 10, 0.3, profile).tolist()


def test_build_pool_if_one_is_the_whole_remainder():
    y = _balanced_labels(50, 4)
    pool = build_pool(y, 4, 20, 1.0, "step", seed=0)
    assert np.array_equal(np.union1d(pool.labeled, pool.unlabeled), np.arange(y.size))
    assert pool.unlabeled.size == y.size - 20
    assert pool.target_counts.tolist() == [45] * 4


def test_build_pool_class_short_of_target_keeps_all_it_has():
    # Class 2 has only 6 samples: fewer than its target whatever the initial draw takes.
    y = np.concatenate([np.full(100, 0), np.full(100, 1), np.full(6, 2)])
    pool = build_pool(y, 3, 10, 0.5, "exp", seed=1)
    _check_pool(pool, y, 3, 10)
    left_in_2 = int(np.sum(y[np.setdiff1d(np.arange(y.size), pool.labeled)] == 2))
    assert pool.pool_counts[2] == left_in_2
    assert pool.target_counts.tolist() == [65, 45, 32]  # n_max = 196 // 3
    assert pool.pool_counts[:2].tolist() == [65, 45]


@pytest.mark.parametrize("bad", [0, -3, 1000 - 10 + 1, 2.5, True])
def test_build_pool_rejects_bad_initial_labeled(bad):
    y = _balanced_labels(100, 10)
    with pytest.raises(ValueError, match="initial_labeled"):
        build_pool(y, 10, bad, 0.1, "step", seed=0)


def test_build_pool_accepts_initial_labeled_bounds():
    y = _balanced_labels(10, 10)
    assert build_pool(y, 10, 1, 0.5, "step", 0).labeled.size == 1
    assert build_pool(y, 10, 90, 0.5, "step", 0).labeled.size == 90


def test_build_pool_rejects_bad_labels_and_arguments():
    with pytest.raises(ValueError, match="y_train"):
        build_pool(np.array([0, 1, 5, 1, 0]), 3, 1, 0.5, "step", 0)
    with pytest.raises(ValueError, match="y_train"):
        build_pool(np.array([0.0, 1.0, 0.0, 1.0]), 2, 1, 0.5, "step", 0)
    with pytest.raises(ValueError, match="imbalance_factor"):
        build_pool(_balanced_labels(10, 2), 2, 2, 0, "step", 0)
    with pytest.raises(ValueError, match="profile"):
        build_pool(_balanced_labels(10, 2), 2, 2, 0.5, "zipf", 0)


# --------------------------------------------------------------------------------------------
# Dataset and digits
# --------------------------------------------------------------------------------------------


def test_digits_loader():
    from sklearn.datasets import load_digits

    ds = load_digits_dataset()
    assert ds.name == "digits"
    assert ds.x_train.shape == (1797 - 300, 1, 8, 8) and ds.x_test.shape == (300, 1, 8, 8)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.y_test.dtype == np.int64
    assert ds.num_classes == 10 and ds.image_shape == (1, 8, 8)
    assert ds.class_names == tuple("0123456789")
    assert np.bincount(ds.y_test, minlength=10).tolist() == [30] * 10
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # All of sklearn's images, once each, scaled 0..16 -> 0..255.
    raw = load_digits()
    assert ds.y_train.size + ds.y_test.size == raw.target.size
    scaled = np.rint(raw.images * 255 / 16).astype(np.uint8)
    assert int(ds.x_train.sum(dtype=np.int64) + ds.x_test.sum(dtype=np.int64)) == int(
        scaled.sum(dtype=np.int64)
    )
    assert np.array_equal(
        np.bincount(np.concatenate([ds.y_train, ds.y_test])), np.bincount(raw.target)
    )
    # Statistics from x_train, in [0, 1] scale.
    x = ds.x_train.astype(np.float64) / 255
    assert ds.mean == pytest.approx((x.mean(),)) and ds.std == pytest.approx((x.std(),))


def test_digits_test_set_is_fixed_and_sized():
    a, b = load_digits_dataset(), load_dataset("digits")
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    small = load_digits_dataset(test_per_class=5)
    assert np.bincount(small.y_test).tolist() == [5] * 10
    for bad in (0, 500):
        with pytest.raises(ValueError, match="test_per_class"):
            load_digits_dataset(test_per_class=bad)


def test_dataset_validation_and_stats():
    x = np.zeros((4, 3, 2, 2), np.uint8)
    x[:, 0] = 255
    ds = Dataset("t", x, np.array([0, 1, 0, 1]), x[:2], np.array([1, 0]), ("a", "b"))
    assert ds.mean == (1.0, 0.0, 0.0) and ds.std == (0.0, 0.0, 0.0)
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 2 and ds.image_shape == (3, 2, 2)
    with pytest.raises(ValueError, match="x_train"):
        Dataset("t", x.astype(np.float32), np.zeros(4, int), x, np.zeros(4, int), ("a",))
    with pytest.raises(ValueError, match="y_test"):
        Dataset("t", x, np.zeros(4, int), x, np.zeros(3, int), ("a",))
    with pytest.raises(ValueError, match="y_train"):
        Dataset("t", x, np.array([0, 1, 2, 0]), x, np.zeros(4, int), ("a", "b"))


def test_load_dataset_dispatch_errors_and_resize():
    assert DATASETS == ("digits", "cifar10", "cifar100", "tinyimagenet", "imagefolder")
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("mnist")
    for name, url in (
        ("cifar10", CIFAR_URL),
        ("cifar100", CIFAR_URL),
        ("tinyimagenet", TINY_IMAGENET_URL),
        ("imagefolder", "sub-folder"),
    ):
        with pytest.raises(DataError, match="data_dir") as err:
            load_dataset(name)
        assert url in str(err.value)
    # image_size applies to Tiny ImageNet and image folders; digits and CIFAR keep native sizes.
    digits = load_dataset("digits", image_size=16, test_per_class=3)
    assert digits.x_train.shape[1:] == (1, 8, 8)
    assert digits.x_test.shape == (30, 1, 8, 8)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("digits", image_size=0)


def test_module_does_not_import_torch():
    code = "import sys, cbal.data; sys.exit('torch' in sys.modules or 'torchvision' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1])
    assert done.returncode == 0


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar10_loads_official_layout(tmp_path, style):
    root = make_cifar10(tmp_path, n_per_batch=20, n_test=30, style=style)
    ds = load_cifar(root)
    assert ds.name == "cifar10" and ds.class_names == CIFAR10_NAMES
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (30, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    folder = root / C10
    raws = [_raw_pickle(folder / f"data_batch_{i}") for i in range(1, 6)]
    assert ds.y_train.tolist() == [lab for r in raws for lab in r[b"labels"]]
    # Rows are CHW: the first 1024 bytes are the red plane.
    row = raws[2][b"data"][7]
    assert np.array_equal(ds.x_train[47, 0].reshape(-1), row[:1024])
    assert np.array_equal(ds.x_train[47].reshape(-1), row)
    test = _raw_pickle(folder / "test_batch")
    assert ds.y_test.tolist() == test[b"labels"]
    assert np.array_equal(ds.x_test.reshape(30, -1), test[b"data"])
    x = ds.x_train.astype(np.float64) / 255
    assert ds.mean == pytest.approx(tuple(x.mean(axis=(0, 2, 3))))
    assert ds.std == pytest.approx(tuple(x.std(axis=(0, 2, 3))))
    # data_dir may also be the batches folder itself, and load_dataset dispatches.
    again = load_dataset("cifar10", folder)
    assert np.array_equal(again.x_train, ds.x_train) and again.image_shape == (3, 32, 32)


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar100_loads_official_layout(tmp_path, style):
    root = make_cifar100(tmp_path, n_train=200, n_test=100, style=style)
    ds = load_dataset("cifar100", str(root))
    assert ds.name == "cifar100" and ds.num_classes == 100
    assert ds.class_names == cifar100_names()
    assert ds.x_train.shape == (200, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    raw = _raw_pickle(root / C100 / "train")
    assert ds.y_train.tolist() == raw[b"fine_labels"]  # fine, not coarse, labels
    assert np.array_equal(ds.x_train.reshape(200, -1), raw[b"data"])
    assert (
        load_cifar(root / C100, num_classes=100).y_test.tolist()
        == _raw_pickle(root / C100 / "test")[b"fine_labels"]
    )


def test_load_cifar_rejects_bad_num_classes(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        load_cifar(tmp_path, num_classes=20)


BAD_KINDS = [
    "wrong_keys",
    "no_labels",
    "wrong_dtype",
    "wrong_shape",
    "label_range",
    "label_length",
    "label_type",
    "data_not_array",
    "not_dict",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("target", ["data_batch_3", "test_batch"])
def test_cifar10_bad_batch_raises_data_error(tmp_path, kind, target):
    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    bad = write_bad_cifar_batch(root / C10 / target, kind)
    with pytest.raises(DataError) as err:
        load_cifar(root)
    assert str(bad) in str(err.value)
    assert CIFAR_URL in str(err.value)


@pytest.mark.parametrize("kind", ["wrong_keys", "wrong_dtype", "wrong_shape", "label_range"])
def test_cifar100_bad_batch_raises_data_error(tmp_path, kind):
    root = make_cifar100(tmp_path)
    bad = write_bad_cifar_batch(
        root / C100 / "train", kind, label_key=b"fine_labels", num_classes=100, style="py3"
    )
    with pytest.raises(DataError, match="CIFAR-100") as err:
        load_cifar(root, 100)
    assert str(bad) in str(err.value)


def test_cifar_error_messages_name_key_and_expectation(tmp_path):
    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    write_bad_cifar_batch(root / C10 / "data_batch_1", "wrong_dtype")
    with pytest.raises(DataError, match=r"'data' should be a uint8 array, got dtype float32"):
        load_cifar(root)
    write_bad_cifar_batch(root / C10 / "data_batch_1", "wrong_keys")
    with pytest.raises(DataError, match=r"no key 'data'"):
        load_cifar(root)
    write_bad_cifar_batch(root / C10 / "data_batch_1", "label_length")
    with pytest.raises(DataError, match=r"'labels' should be 12 labels"):
        load_cifar(root)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.999])
@pytest.mark.parametrize("target", ["data_batch_1", "test_batch", "batches.meta"])
def test_cifar_truncated_file_raises_data_error(tmp_path, fraction, target):
    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    path = truncate_file(root / C10 / target, fraction)
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        load_cifar(root)
    assert str(path) in str(err.value)


def test_cifar_garbage_file_raises_data_error(tmp_path):
    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    path = root / C10 / "data_batch_2"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError) as err:
        load_cifar(root)
    assert str(path) in str(err.value)


def test_cifar_bad_meta_raises_data_error(tmp_path):
    from tests.fixtures import write_cifar_pickle

    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    meta = root / C10 / "batches.meta"
    write_cifar_pickle(meta, {b"label_names": [b"a", b"b"]})
    with pytest.raises(DataError, match="label_names") as err:
        load_cifar(root)
    assert str(meta) in str(err.value)
    write_cifar_pickle(meta, {b"names": [b"a"] * 10})
    with pytest.raises(DataError, match="no key 'label_names'"):
        load_cifar(root)


def test_cifar_missing_files_and_folders(tmp_path):
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path)  # nothing there
    msg = str(err.value)
    assert str(tmp_path / C10 / "data_batch_1") in msg and CIFAR_URL in msg
    assert "cifar-10-python.tar.gz" in msg and "tar -xzf" in msg

    with pytest.raises(DataError, match=r"cifar-100-python\.tar\.gz"):
        load_cifar(tmp_path / "nowhere", 100)

    root = make_cifar10(tmp_path / "a", n_per_batch=10, n_test=10)
    (root / C10 / "data_batch_5").unlink()
    with pytest.raises(DataError, match="missing") as err:
        load_cifar(root)
    assert str(root / C10 / "data_batch_5") in str(err.value)

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="is a file"):
        load_cifar(archive)


@pytest.mark.parametrize("nested", [True, False])
@pytest.mark.parametrize("target", ["data_batch_1", "batches.meta"])
def test_malicious_pickle_is_refused_without_running(tmp_path, nested, target):
    root = make_cifar10(tmp_path / "d", n_per_batch=10, n_test=10)
    marker = tmp_path / "pwned"
    path = write_malicious_pickle(root / C10 / target, marker, nested=nested)
    with pytest.raises(DataError, match=r"(?i)refusing to unpickle posix\.system") as err:
        load_cifar(root)
    assert str(path) in str(err.value) and "not a CIFAR batch" in str(err.value)
    assert not marker.exists()


def test_malicious_fixture_is_live(tmp_path):
    # Sanity check of the fixture itself: an unrestricted unpickler does run the payload.
    marker = tmp_path / "pwned"
    path = write_malicious_pickle(tmp_path / "evil", marker, nested=False)
    with open(path, "rb") as fh:
        pickle.load(fh)  # deliberately unrestricted, on our own harmless payload
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        # _codecs.encode with another codec than latin1
        b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.",
        # builtins.eval / os.system referenced via protocol-0 GLOBAL
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cos\nsystem\n(S'true'\ntR.",
        # a persistent id
        b"\x80\x02X\x01\x00\x00\x00xQ.",
    ],
)
def test_hand_made_hostile_pickles_are_refused(tmp_path, payload):
    root = make_cifar10(tmp_path, n_per_batch=10, n_test=10)
    path = root / C10 / "data_batch_4"
    path.write_bytes(payload)
    with pytest.raises(DataError) as err:
        load_cifar(root)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------


def test_tiny_imagenet_loads_official_layout(tmp_path):
    root = make_tiny_imagenet(tmp_path, n_train_per_class=3, n_val_per_class=2)
    ds = load_dataset("tinyimagenet", root, image_size=64)
    assert ds.name == "tinyimagenet" and ds.num_classes == 4
    assert ds.class_names == ("goldfish", "European fire salamander", "bullfrog", "tailed frog")
    assert ds.x_train.shape == (12, 3, 64, 64) and ds.x_test.shape == (8, 3, 64, 64)
    assert ds.x_train.dtype == np.uint8 and ds.y_test.dtype == np.int64
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert ds.y_test.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    top = root / TINY
    first = np.asarray(
        Image.open(top / "train" / TINY_WNIDS[0] / "images" / f"{TINY_WNIDS[0]}_0.JPEG").convert(
            "RGB"
        )
    )
    assert np.array_equal(ds.x_train[0], first.transpose(2, 0, 1))
    assert np.array_equal(ds.x_train[0, 0], ds.x_train[0, 2])  # the greyscale one, as RGB
    val5 = np.asarray(Image.open(top / "val" / "images" / "val_5.JPEG").convert("RGB"))
    assert np.array_equal(ds.x_test[5], val5.transpose(2, 0, 1))


def test_tiny_imagenet_options(tmp_path):
    root = make_tiny_imagenet(tmp_path, with_words=False)
    top = root / TINY
    (top / "wnids.txt").write_text("\n".join(reversed(TINY_WNIDS)) + "\n\n")
    ds = load_tiny_imagenet(top, image_size=32)  # the folder itself, resized
    assert ds.class_names == TINY_WNIDS  # no words.txt: wnids, in sorted order
    assert ds.x_train.shape == (12, 3, 32, 32) and ds.x_test.shape == (8, 3, 32, 32)
    assert load_dataset("tinyimagenet", root).image_shape == (3, 32, 32)  # load_dataset default
    assert load_tiny_imagenet(root).image_shape == (3, 64, 64)  # native size


def _tiny(tmp_path: Path) -> Path:
    return make_tiny_imagenet(tmp_path, n_train_per_class=2, n_val_per_class=1) / TINY


def test_tiny_imagenet_missing_everything(tmp_path):
    with pytest.raises(DataError) as err:
        load_tiny_imagenet(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / TINY / "wnids.txt") in msg and TINY_IMAGENET_URL in msg


def test_tiny_imagenet_missing_annotations(tmp_path):
    top = _tiny(tmp_path)
    (top / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="missing") as err:
        load_tiny_imagenet(tmp_path)
    assert str(top / "val" / "val_annotations.txt") in str(err.value)
    assert TINY_IMAGENET_URL in str(err.value)


def test_tiny_imagenet_unknown_wnid(tmp_path):
    top = _tiny(tmp_path)
    ann = top / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="n99999999") as err:
        load_tiny_imagenet(tmp_path)
    assert str(ann) in str(err.value) and "line 5" in str(err.value)


def test_tiny_imagenet_missing_val_image(tmp_path):
    top = _tiny(tmp_path)
    (top / "val" / "images" / "val_2.JPEG").unlink()
    with pytest.raises(DataError) as err:
        load_tiny_imagenet(tmp_path)
    assert str(top / "val" / "images" / "val_2.JPEG") in str(err.value)


def test_tiny_imagenet_malformed_annotation(tmp_path):
    top = _tiny(tmp_path)
    ann = top / "val" / "val_annotations.txt"
    ann.write_text("val_0.JPEG n01443537 0 0 1 1\n")  # spaces, not tabs
    with pytest.raises(DataError, match="line 1") as err:
        load_tiny_imagenet(tmp_path)
    assert str(ann) in str(err.value)


@pytest.mark.parametrize("how", ["truncate", "garbage", "empty"])
@pytest.mark.parametrize("where", ["train", "val"])
def test_tiny_imagenet_unreadable_jpeg(tmp_path, how, where):
    top = _tiny(tmp_path)
    if where == "train":
        path = top / "train" / TINY_WNIDS[1] / "images" / f"{TINY_WNIDS[1]}_1.JPEG"
    else:
        path = top / "val" / "images" / "val_3.JPEG"
    if how == "truncate":
        truncate_file(path, 0.5)
    elif how == "garbage":
        path.write_bytes(b"not a jpeg at all" * 10)
    else:
        path.write_bytes(b"")
    with pytest.raises(DataError, match="Cannot read image file") as err:
        load_tiny_imagenet(tmp_path)
    assert str(path) in str(err.value)


def test_tiny_imagenet_bad_train_folders(tmp_path):
    top = _tiny(tmp_path)
    images = top / "train" / TINY_WNIDS[2] / "images"
    for f in images.iterdir():
        f.unlink()
    with pytest.raises(DataError, match="holds no images") as err:
        load_tiny_imagenet(tmp_path)
    assert str(images) in str(err.value)
    shutil.rmtree(top / "train" / TINY_WNIDS[2])
    with pytest.raises(DataError, match="is missing") as err:
        load_tiny_imagenet(tmp_path)
    assert str(images) in str(err.value)


def test_tiny_imagenet_bad_wnids(tmp_path):
    top = _tiny(tmp_path)
    (top / "wnids.txt").write_text("n01443537\nn01443537\n")
    with pytest.raises(DataError, match="distinct") as err:
        load_tiny_imagenet(tmp_path)
    assert str(top / "wnids.txt") in str(err.value)


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------


def test_image_folder_flat_layout_split(tmp_path):
    root = make_image_folder(tmp_path, classes=("dog", "cat", "fish"), n_per_class=10)
    ds = load_dataset("imagefolder", root)
    assert ds.name == "imagefolder" and ds.class_names == ("cat", "dog", "fish")
    assert ds.x_train.shape == (24, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]  # stratified, 20 %
    again = load_image_folder(root)
    assert np.array_equal(again.x_test, ds.x_test) and np.array_equal(again.y_train, ds.y_train)
    other = load_image_folder(root, image_size=8, test_fraction=0.5)
    assert other.x_train.shape == (15, 3, 8, 8) and np.bincount(other.y_test).tolist() == [5] * 3


def test_image_folder_pixels_modes_and_formats(tmp_path):
    root = make_image_folder(tmp_path, classes=("a", "b"), n_per_class=3, size=(12, 12), ext="bmp")
    Image.new("RGBA", (12, 12), (10, 20, 30, 40)).save(root / "a" / "rgba.png")
    Image.new("L", (12, 12), 77).save(root / "b" / "sub_grey.jpg")
    Image.new("P", (12, 12), 3).save(root / "b" / "palette.gif")
    ds = load_image_folder(root, image_size=12, test_fraction=0.25)
    x = np.concatenate([ds.x_train, ds.x_test])
    assert x.shape == (9, 3, 12, 12)
    colours = {tuple(img[:, 0, 0]) for img in x}
    assert (10, 20, 30) in colours and (77, 77, 77) in colours
    original = np.asarray(Image.open(root / "a" / "a_0.bmp").convert("RGB")).transpose(2, 0, 1)
    assert any(np.array_equal(img, original) for img in x)


def test_image_folder_train_test_layout(tmp_path):
    root = make_image_folder(
        tmp_path, classes=("x", "y", "z"), n_per_class=4, split=True, n_test_per_class=2
    )
    ds = load_image_folder(root, image_size=16)
    assert ds.class_names == ("x", "y", "z")
    assert ds.x_train.shape == (12, 3, 16, 16) and ds.x_test.shape == (6, 3, 16, 16)
    assert ds.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    shutil.rmtree(root / "train" / "z")
    with pytest.raises(DataError, match="no train folder") as err:
        load_image_folder(root)
    assert "z" in str(err.value)


def test_image_folder_non_image_file(tmp_path):
    root = make_image_folder(tmp_path)
    bad = root / "dog" / "notes.txt"
    bad.write_text("these are dogs")
    with pytest.raises(DataError, match="Cannot read image file") as err:
        load_image_folder(root)
    assert str(bad) in str(err.value)


def test_image_folder_empty_class_and_too_few_classes(tmp_path):
    root = make_image_folder(tmp_path, classes=("a", "b"))
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images") as err:
        load_image_folder(root)
    assert str(root / "empty") in str(err.value)
    (root / "empty").rmdir()
    shutil.rmtree(root / "b")
    with pytest.raises(DataError, match="at least 2") as err:
        load_image_folder(root)
    assert str(root) in str(err.value)


def test_image_folder_missing_and_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        load_image_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)
    with pytest.raises(ValueError, match="test_fraction"):
        load_image_folder(tmp_path, test_fraction=1.0)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path, image_size=0)


def test_many_images_threaded_path_and_error(tmp_path):
    # More than 256 files takes the thread-pool path; a bad file in the middle still surfaces.
    root = make_image_folder(tmp_path, classes=("a", "b"), n_per_class=160, size=(4, 4))
    ds = load_image_folder(root, image_size=4)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 320
    bad = root / "b" / "b_99.png"
    truncate_file(bad, 0.3)
    with pytest.raises(DataError) as err:
        load_image_folder(root, image_size=4)
    assert str(bad) in str(err.value)
