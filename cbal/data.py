"""Datasets and imbalanced pools for class-balanced active learning.

This module loads the data sets cbal knows (scikit-learn's bundled 8x8 digits, CIFAR-10/100
from the official python pickles, Tiny ImageNet from the official zip layout, and any folder
of images with one sub-folder per class) into one in-memory form, :class:`Dataset`, and builds
the imbalanced unlabeled pools of the paper's protocol (:func:`imbalanced_counts`,
:func:`build_pool`; DESIGN.md section 2).

Nothing here downloads anything: a missing or damaged data set raises :class:`DataError` with a
message that names the file, says what was expected and where to get the official files.

Images are kept as ``uint8`` in NCHW order (4x smaller than float32; the training code converts
batches on the fly). The module imports neither torch nor torchvision: torchvision's CIFAR
classes md5-check every file and unpickle without restriction, so the CIFAR pickles are read
here through an unpickler that admits only the few types the official files contain.
"""

from __future__ import annotations

import math
import os
import pickle
import stat
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from cbal.config import DATASETS, INITIAL_SAMPLINGS, PROFILES, ConfigError

__all__ = [
    "CIFAR_URL",
    "DATASETS",
    "PROFILES",
    "TINY_IMAGENET_URL",
    "DataError",
    "Dataset",
    "Pool",
    "build_pool",
    "imbalanced_counts",
    "initial_shortfall",
    "load_cifar",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
    "load_tiny_imagenet",
]


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

# Fixed seed of every test split: all runs (whatever their own seed) share one test set.
TEST_SPLIT_SEED = 0

_CIFAR_DIRS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
_CIFAR_ARCHIVES = {10: "cifar-10-python.tar.gz", 100: "cifar-100-python.tar.gz"}
_TINY_DIR = "tiny-imagenet-200"
_CIFAR_ROW = 3 * 32 * 32


class DataError(Exception):
    """A data set is missing, laid out wrongly, or damaged.

    The message names the file or folder at fault, says what was expected and, for the
    official data sets, how to get the files. Every loader in :mod:`cbal.data` raises only this
    for problems with the data on disk (bad arguments still raise ``ValueError``).
    """


# --------------------------------------------------------------------------------------------
# The in-memory data set
# --------------------------------------------------------------------------------------------


def _channel_stats(x: NDArray[np.uint8]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images, in [0, 1] scale.

    A 256-bin histogram per channel gives exact moments without a float copy of the images
    (CIFAR's train set as float64 would be 1.2 GB).
    """
    means: list[float] = []
    stds: list[float] = []
    values = np.arange(256, dtype=np.float64) / 255.0
    for c in range(x.shape[1]):
        hist = np.bincount(x[:, c].reshape(-1), minlength=256).astype(np.float64)
        total = hist.sum()
        if total == 0:
            means.append(0.0)
            stds.append(0.0)
            continue
        mean = float(hist @ values / total)
        var = float(hist @ (values - mean) ** 2 / total)
        means.append(mean)
        stds.append(math.sqrt(max(var, 0.0)))
    return tuple(means), tuple(stds)


def _feature_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std of (n, d, 1, 1) features; a constant feature gets std 1."""
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64) if len(x) else np.zeros(x.shape[1])
    std = x.std(axis=(0, 2, 3), dtype=np.float64) if len(x) else np.ones(x.shape[1])
    return tuple(mean.tolist()), tuple(np.where(std > 0, std, 1.0).tolist())


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image data set held in memory.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"cifar10"``.
    x_train, x_test : ndarray of uint8, shape (n, channels, height, width)
        Images in NCHW order, values 0..255.
    y_train, y_test : ndarray of int64, shape (n,)
        Class indices in ``[0, num_classes)``.
    class_names : tuple of str
        One name per class; ``num_classes == len(class_names)``.
    mean, std : tuple of float, optional
        Per-channel mean and standard deviation of ``x_train`` in [0, 1] scale (for input
        normalization). Computed from ``x_train`` when left empty.

    Notes
    -----
    ``eq=False``: two data sets compare by identity (comparing the arrays would be ambiguous
    and slow). Construction validates shapes, dtypes and label ranges (``ValueError``).
    """

    name: str
    x_train: NDArray[np.uint8]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.int64]
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.class_names)
        object.__setattr__(self, "class_names", names)
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = np.asarray(getattr(self, f"y_{split}"))
            features = isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape[2:] == (1, 1)
            if (
                not isinstance(x, np.ndarray)
                or x.ndim != 4
                or not (x.dtype == np.uint8 or features)
            ):
                raise ValueError(
                    f"x_{split} must be a uint8 array of shape (n, C, H, W), or float32 "
                    "features of shape (n, d, 1, 1)"
                )
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(f"y_{split} must have shape ({x.shape[0]},), got {y.shape}")
            if y.size and not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"y_{split} must hold integer class indices, got {y.dtype}")
            y = y.astype(np.int64, copy=False)
            if y.size and (y.min() < 0 or y.max() >= len(names)):
                raise ValueError(f"y_{split} has labels outside [0, {len(names)})")
            object.__setattr__(self, f"y_{split}", y)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train and test images differ in shape: {self.x_train.shape[1:]} vs "
                f"{self.x_test.shape[1:]}"
            )
        if self.x_train.dtype != self.x_test.dtype:
            raise ValueError("train and test arrays differ in dtype")
        if not self.mean or not self.std:
            mean, std = (
                _channel_stats(self.x_train)
                if self.x_train.dtype == np.uint8
                else _feature_stats(self.x_train)
            )
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != self.x_train.shape[1] or len(self.std) != self.x_train.shape[1]:
            raise ValueError("mean and std need one value per channel")

    @property
    def is_features(self) -> bool:
        """Precomputed float features (n, d, 1, 1) rather than images."""
        return bool(self.x_train.dtype == np.float32)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(channels, height, width)``."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


# --------------------------------------------------------------------------------------------
# Imbalanced pools (DESIGN.md section 2)
# --------------------------------------------------------------------------------------------


def _floor(value: float) -> int:
    """Floor that forgives float noise: 4500 * 0.1 = 450.00000000000006 or 449.9999... -> 450."""
    nearest = round(value)
    if abs(value - nearest) <= 1e-9 * max(1.0, abs(value)):
        return int(nearest)
    return math.floor(value)


def _check_imbalance_factor(imbalance_factor: float) -> float:
    try:
        factor = float(imbalance_factor)
    except (TypeError, ValueError):
        raise ValueError(
            f"imbalance_factor must be a number in (0, 1], got {imbalance_factor!r}"
        ) from None
    if isinstance(imbalance_factor, bool) or not math.isfinite(factor) or not 0 < factor <= 1:
        raise ValueError(
            f"imbalance_factor must be a finite number in (0, 1] (1 = balanced), "
            f"got {imbalance_factor!r}"
        )
    return factor


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def _check_int(value: Any, name: str, low: int, high: float = math.inf) -> int:
    # a ConfigError (a ValueError) names the field, which the CLI turns into its flag
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(name, value, "an integer")
    if int(value) < low or int(value) > high:
        allowed = f">= {low}" if high == math.inf else f"in [{low}, {int(high)}]"
        raise ConfigError(name, value, f"an integer {allowed}")
    return int(value)


def imbalanced_counts(
    n_max: int, num_classes: int, imbalance_factor: float, profile: str = "step"
) -> NDArray[np.int64]:
    """Per-class sample counts of an imbalanced pool.

    Parameters
    ----------
    n_max : int
        Count of the largest classes (>= 0).
    num_classes : int
        Number of classes C (>= 1).
    imbalance_factor : float
        IF in (0, 1]: ratio of the smallest to the largest class; 1 means balanced.
    profile : {"step", "exp"}, default "step"
        ``"step"``: the first floor(C/2) classes keep ``n_max``, the others
        ``floor(n_max * IF)`` (the profile of the paper's released index files; note that with
        C = 1 the single class is a "rest" class and gets ``floor(n_max * IF)``).
        ``"exp"``: class c gets ``floor(n_max * IF ** (c / (C - 1)))``; C = 1 gives ``[n_max]``.

    Returns
    -------
    counts : ndarray of int64, shape (num_classes,)

    Raises
    ------
    ValueError
        If an argument is outside its allowed values; the message names it.

    Examples
    --------
    >>> imbalanced_counts(4500, 10, 0.1, "step").tolist()
    [4500, 4500, 4500, 4500, 4500, 450, 450, 450, 450, 450]
    >>> imbalanced_counts(100, 3, 0.01, "exp").tolist()
    [100, 10, 1]
    """
    n_max = _check_int(n_max, "n_max", 0)
    num_classes = _check_int(num_classes, "num_classes", 1)
    factor = _check_imbalance_factor(imbalance_factor)
    _check_profile(profile)
    if profile == "step":
        head = num_classes // 2
        tail = _floor(n_max * factor)
        counts = [n_max] * head + [tail] * (num_classes - head)
    elif num_classes == 1:
        counts = [n_max]
    else:
        counts = [_floor(n_max * factor ** (c / (num_classes - 1))) for c in range(num_classes)]
    return np.asarray(counts, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Pool:
    """The initial labeled set and the imbalanced unlabeled pool of one run.

    Attributes
    ----------
    labeled : ndarray of int64
        Sorted indices into the train set: the initial labeled set.
    unlabeled : ndarray of int64
        Sorted indices into the train set: the imbalanced unlabeled pool (disjoint from
        ``labeled``).
    target_counts : ndarray of int64, shape (C,)
        The per-class counts :func:`imbalanced_counts` asked for.
    pool_counts : ndarray of int64, shape (C,)
        The per-class counts the pool actually has.
    """

    labeled: NDArray[np.int64]
    unlabeled: NDArray[np.int64]
    target_counts: NDArray[np.int64]
    pool_counts: NDArray[np.int64]


def build_pool(
    y_train: ArrayLike,
    num_classes: int,
    initial_labeled: int,
    imbalance_factor: float,
    profile: str,
    seed: int,
    initial_sampling: str = "balanced",
) -> Pool:
    """Draw the initial labeled set and build the imbalanced unlabeled pool (paper protocol).

    1. ``initial_sampling="balanced"`` (the paper's released initial sets): ⌊n/C⌋ random
       images of every class, and one more for ``n mod C`` classes chosen by the seed.
       ``"random"``: ``initial_labeled`` indices drawn uniformly at random, without
       replacement, from the whole (balanced) train set.
    2. The remainder is split by class; with ``n_max = (N_train - initial_labeled) // C``,
       class c keeps ``min(imbalanced_counts(...)[c], available_c)`` randomly chosen samples:
       a class short of its target keeps all it has.

    ``imbalance_factor == 1`` means "no imbalance": the pool is then the whole remainder.
    (After the random initial draw the classes of the remainder differ by a few samples from
    ``n_max``; capping them at ``n_max`` would drop those samples for no reason.)
    ``pool_counts`` reports what the pool actually holds.

    Parameters
    ----------
    y_train : array-like of int, shape (N_train,)
        Train labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes C.
    initial_labeled : int
        Size of the initial labeled set, in ``[1, N_train - C]``.
    imbalance_factor : float
        IF in (0, 1].
    profile : {"step", "exp"}
        See :func:`imbalanced_counts`.
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same pool.
    initial_sampling : {"balanced", "random"}, default "balanced"
        How the initial labeled set is drawn (step 1).

    Returns
    -------
    pool : Pool

    Raises
    ------
    ValueError
        If an argument is invalid; the message names it.
    """
    y = np.asarray(y_train)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError("y_train must be a 1-D array of integer class indices")
    num_classes = _check_int(num_classes, "num_classes", 1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y_train has labels outside [0, num_classes={num_classes})")
    n_train = int(y.shape[0])
    if n_train - num_classes < 1:
        raise ValueError(
            f"y_train has {n_train} samples: too few for {num_classes} classes "
            "(need at least num_classes + 1)"
        )
    initial_labeled = _check_int(initial_labeled, "initial_labeled", 1, n_train - num_classes)
    factor = _check_imbalance_factor(imbalance_factor)
    _check_profile(profile)

    if initial_sampling not in INITIAL_SAMPLINGS:
        raise ValueError(
            f"initial_sampling must be one of {INITIAL_SAMPLINGS}, got {initial_sampling!r}"
        )
    rng = np.random.default_rng(seed)
    if initial_sampling == "random":
        labeled = np.sort(rng.choice(n_train, size=initial_labeled, replace=False))
    else:
        labeled = _balanced_initial(y, num_classes, initial_labeled, rng)
    labeled = labeled.astype(np.int64)
    rest_mask = np.ones(n_train, dtype=bool)
    rest_mask[labeled] = False
    rest = np.flatnonzero(rest_mask)

    n_max = (n_train - initial_labeled) // num_classes
    targets = imbalanced_counts(n_max, num_classes, factor, profile)
    y_rest = y[rest]
    kept: list[NDArray[np.int64]] = []
    for c in range(num_classes):
        candidates = rest[y_rest == c]
        if factor == 1.0:
            kept.append(candidates)
            continue
        k = min(int(targets[c]), candidates.size)
        kept.append(rng.choice(candidates, size=k, replace=False))
    unlabeled = np.sort(np.concatenate(kept)).astype(np.int64)
    pool_counts = np.bincount(y[unlabeled], minlength=num_classes).astype(np.int64)
    return Pool(
        labeled=labeled, unlabeled=unlabeled, target_counts=targets, pool_counts=pool_counts
    )


def initial_shortfall(
    y_train: ArrayLike, num_classes: int, initial_labeled: int
) -> tuple[int, int, int] | None:
    """``(class, images, share)`` of the first class with fewer train images than the
    ⌈n/C⌉ a balanced initial set may ask of it, else None (whatever the seed)."""
    share = -(-int(initial_labeled) // int(num_classes))
    have = np.bincount(np.asarray(y_train), minlength=num_classes)
    short = np.flatnonzero(have < share)
    return None if short.size == 0 else (int(short[0]), int(have[short[0]]), share)


def _balanced_initial(
    y: NDArray[Any], num_classes: int, n: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """⌊n/C⌋ random indices per class, one more for ``n mod C`` seed-chosen classes."""
    short = initial_shortfall(y, num_classes, n)
    if short is not None:
        c, have, want = short
        raise ValueError(
            f"initial_labeled={n} asks up to {want} images of class {c}, which has only {have}: "
            "lower initial_labeled or use initial_sampling='random'"
        )
    share = np.full(num_classes, n // num_classes, dtype=np.int64)
    share[rng.choice(num_classes, size=n % num_classes, replace=False)] += 1
    picks = [
        rng.choice(np.flatnonzero(y == c), size=share[c], replace=False) for c in range(num_classes)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _balanced_test_split(
    y: NDArray[np.int64], per_class: int, num_classes: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Indices (train, test) with ``per_class`` test samples per class, fixed seed."""
    rng = np.random.default_rng(TEST_SPLIT_SEED)
    test = [
        rng.choice(np.flatnonzero(y == c), size=per_class, replace=False)
        for c in range(num_classes)
    ]
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(y.shape[0], dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def _check_size(image_size: Any, name: str = "image_size") -> int:
    return _check_int(image_size, name, 1)


def _read_image(path: Path, size: int) -> NDArray[np.uint8]:
    """Decode one image file to a (3, size, size) uint8 array; DataError if PIL can't."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")  # forces the decode; grey/palette/RGBA -> RGB
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBomb…
        raise DataError(
            f"Cannot read image file {path}: {type(exc).__name__}: {exc}. Expected an image "
            "PIL can decode (PNG, JPEG, BMP, …); the file may be truncated, corrupt or not an "
            "image at all. Remove or replace it."
        ) from exc
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _memory_bytes() -> int | None:
    with_pages = ("SC_PAGE_SIZE", "SC_PHYS_PAGES")
    if not all(n in os.sysconf_names for n in with_pages):
        return None
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _check_memory(n: int, size: int) -> None:
    """Refuse, before decoding anything, images that could not fit in this machine's memory."""
    need, have = n * 3 * size * size, _memory_bytes()
    if have is not None and need > have // 2:
        raise ConfigError(
            "image_size",
            size,
            f"a smaller size: {n:,} images of {size}x{size} need {need / 2**30:.1f} GiB, "
            f"more than half of this machine's {have / 2**30:.1f} GiB",
        )


def _read_images(paths: Sequence[Path], size: int) -> NDArray[np.uint8]:
    """Decode many image files into one (n, 3, size, size) uint8 array.

    PIL releases the GIL while decoding, so a few threads speed up the 100k Tiny ImageNet
    JPEGs; the first failure (in file order) is raised as DataError. PIL's decompression-bomb
    warning is that error too (set once here, around every thread, not per image).
    """
    _check_memory(len(paths), size)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode_all(paths, size)


def _decode_all(paths: Sequence[Path], size: int) -> NDArray[np.uint8]:
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def work(chunk: range) -> None:
        for i in chunk:
            out[i] = _read_image(paths[i], size)

    workers = min(8, os.cpu_count() or 1)
    if len(paths) < 256 or workers == 1:
        work(range(len(paths)))
        return out
    step = 256
    chunks = [range(s, min(s + step, len(paths))) for s in range(0, len(paths), step)]
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        for _ in executor.map(work, chunks):
            pass
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return out


def _list_files(folder: Path) -> list[Path]:
    """All non-hidden files under ``folder`` (recursively), sorted; DataError for anything
    that is not a regular file (a FIFO would block the reader forever), found without
    opening it."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(_regular(Path(dirpath) / f) for f in filenames if not f.startswith("."))
    return sorted(found)


def _regular(path: Path) -> Path:
    """``path`` if it is (or links to) a regular file; a DataError naming it otherwise."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror}; remove it or fix the link.") from None
    if not stat.S_ISREG(mode):
        raise DataError(
            f"{path} is not a regular file (a FIFO, socket or device); only image files can "
            "be read. Remove it."
        )
    return path


# --------------------------------------------------------------------------------------------
# Digits (scikit-learn's bundled copy: the offline default)
# --------------------------------------------------------------------------------------------


def load_digits_dataset(test_per_class: int = 30) -> Dataset:
    """Load scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download).

    Pixel values 0..16 are scaled to uint8 0..255; images have shape (1, 8, 8). The test set
    takes ``test_per_class`` images of each class, drawn with a fixed seed (0, independent of
    any run seed) so every run shares one balanced test set; the rest is the train set.

    Parameters
    ----------
    test_per_class : int, default 30
        Test images per class, in ``[1, smallest class size - 1]`` (at most 173).

    Returns
    -------
    dataset : Dataset
        Named ``"digits"``.
    """
    from sklearn.datasets import load_digits  # lazy: sklearn's import costs ~1 s

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    x = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    y = np.asarray(bunch.target, dtype=np.int64)
    smallest = int(np.bincount(y, minlength=10).min())
    test_per_class = _check_int(test_per_class, "test_per_class", 1, smallest - 1)
    train_idx, test_idx = _balanced_test_split(y, test_per_class, 10)
    return Dataset(
        name="digits",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        class_names=tuple(str(d) for d in range(10)),
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (official python pickles, read through a restricted unpickler)
# --------------------------------------------------------------------------------------------


def _cifar_help(num_classes: int, data_dir: Path | str) -> str:
    folder = _CIFAR_DIRS[num_classes]
    archive = _CIFAR_ARCHIVES[num_classes]
    return (
        f"Download the CIFAR-{num_classes} python version ({archive}) from {CIFAR_URL} and "
        f"unpack it into {data_dir} (e.g. `tar -xzf {archive} -C {data_dir}`), which creates "
        f"{Path(data_dir) / folder}/; pass that parent folder (or the {folder} folder itself) "
        "as data_dir. cbal never downloads data."
    )


# numpy's array-rebuilding function, taken from an array's own pickle recipe so that neither
# numpy.core (deprecated in numpy 2) nor numpy._core (absent in old numpy) is imported by name.
_NP_RECONSTRUCT = cast(Callable[..., Any], cast(tuple, np.zeros(0).__reduce__())[0])


def _latin1_encode(text: Any, encoding: Any = "latin1", /) -> bytes:
    # Python 3's pickle protocol 2 spells bytes as _codecs.encode(str, "latin1"); admit only
    # that use, not arbitrary codecs.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is admitted only as (str, 'latin1')")
    return text.encode("latin1")


class _NdarrayName:
    """What the name numpy.ndarray unpickles to: only :func:`_reconstruct_empty` accepts it.
    Handing out the class itself would let a file call ``numpy.ndarray(shape)`` and allocate
    any size from a few bytes."""

    def __call__(self, *args: Any) -> Any:
        raise pickle.UnpicklingError("numpy.ndarray is admitted only as _reconstruct's argument")


_NDARRAY = _NdarrayName()


def _reconstruct_empty(subtype: Any, shape: Any, dtype: Any) -> Any:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + __setstate__ with its data:
    # the empty array is all this may build; its size then comes from the file's own bytes
    if subtype is not _NDARRAY or tuple(shape) != (0,) or dtype not in (b"b", "b"):
        raise pickle.UnpicklingError("_reconstruct is admitted only as (ndarray, (0,), 'b')")
    return _NP_RECONSTRUCT(np.ndarray, (0,), b"b")


# Everything the official CIFAR files (and faithful re-pickles of them) reference by name.
# Plain dicts, lists, str, bytes and ints need no lookup.
_CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_empty,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_empty,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR batch needs; anything else is refused
    before it is imported or called, so a tampered file cannot run code."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"Refusing to unpickle {module}.{name} from {self._path}: not a CIFAR batch. "
                "The official CIFAR pickles contain only numpy arrays, lists, strings and "
                "integers; this file may have been tampered with. Delete it and re-download "
                f"the official archive from {CIFAR_URL}."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(
            f"Refusing to unpickle a persistent id from {self._path}: not a CIFAR batch."
        )


def _str_key(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def _unpickle_cifar(path: Path, num_classes: int, data_dir: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"CIFAR-{num_classes} file {path} is missing. Expected the official python layout "
            f"({_CIFAR_DIRS[num_classes]}/ with its batch files). "
            + _cifar_help(num_classes, data_dir)
        )
    try:
        with open(path, "rb") as fh:
            obj = _CifarUnpickler(fh, path).load()
    except DataError:
        raise
    except Exception as exc:  # truncated/corrupt pickles raise EOFError, UnpicklingError, …
        raise DataError(
            f"Cannot read CIFAR-{num_classes} file {path}: {type(exc).__name__}: {exc}. Expected "
            "an official CIFAR python pickle; the file is probably truncated or corrupt. "
            + _cifar_help(num_classes, data_dir)
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(
            f"CIFAR-{num_classes} file {path} holds a {type(obj).__name__}, expected a dict "
            "(an official CIFAR python pickle). " + _cifar_help(num_classes, data_dir)
        )
    return {_str_key(k): v for k, v in obj.items()}


def _cifar_bad(
    path: Path, key: str, expected: str, got: str, num_classes: int, data_dir: Path
) -> DataError:
    return DataError(
        f"CIFAR-{num_classes} file {path}: key '{key}' should be {expected}, got {got}. "
        "The file is not an official CIFAR batch or is damaged. "
        + _cifar_help(num_classes, data_dir)
    )


def _read_cifar_batch(
    path: Path, label_key: str, num_classes: int, data_dir: Path
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    batch = _unpickle_cifar(path, num_classes, data_dir)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(
                f"CIFAR-{num_classes} file {path} has no key '{key}' (keys: "
                f"{sorted(map(str, batch))}); expected 'data' and '{label_key}'. "
                + _cifar_help(num_classes, data_dir)
            )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        got = f"dtype {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _cifar_bad(path, "data", "a uint8 array", got, num_classes, data_dir)
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW or data.shape[0] == 0:
        raise _cifar_bad(
            path,
            "data",
            f"of shape (n, {_CIFAR_ROW})",
            f"shape {data.shape}",
            num_classes,
            data_dir,
        )
    raw = batch[label_key]
    if not isinstance(raw, (list, tuple, np.ndarray)):
        raise _cifar_bad(
            path, label_key, "a list of integers", type(raw).__name__, num_classes, data_dir
        )
    labels = np.asarray(raw)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise _cifar_bad(
            path,
            label_key,
            "a flat list of integers",
            f"an array of dtype {labels.dtype} and shape {labels.shape}",
            num_classes,
            data_dir,
        )
    if labels.shape[0] != data.shape[0]:
        raise _cifar_bad(
            path,
            label_key,
            f"{data.shape[0]} labels (one per image)",
            f"{labels.shape[0]}",
            num_classes,
            data_dir,
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _cifar_bad(
            path,
            label_key,
            f"labels in [0, {num_classes})",
            f"range [{labels.min()}, {labels.max()}]",
            num_classes,
            data_dir,
        )
    # CHW rows -> NCHW images; a copy so the (possibly read-only) pickle buffer is not kept.
    images = np.array(data.reshape(-1, 3, 32, 32), dtype=np.uint8, order="C")
    return images, labels.astype(np.int64)


def _read_cifar_names(path: Path, key: str, num_classes: int, data_dir: Path) -> tuple[str, ...]:
    meta = _unpickle_cifar(path, num_classes, data_dir)
    if key not in meta:
        raise DataError(
            f"CIFAR-{num_classes} meta file {path} has no key '{key}' (keys: "
            f"{sorted(map(str, meta))}). " + _cifar_help(num_classes, data_dir)
        )
    names = meta[key]
    is_list = isinstance(names, (list, tuple))
    if (
        not is_list
        or len(names) != num_classes
        or not all(isinstance(n, (str, bytes)) for n in names)
    ):
        got = f"{len(names)} items" if is_list else type(names).__name__
        raise _cifar_bad(
            path, key, f"a list of {num_classes} class names (strings)", got, num_classes, data_dir
        )
    return tuple(_str_key(n) for n in names)


def _locate(
    data_dir: str | os.PathLike[str] | None,
    subdir: str,
    marker: str,
    help_text: Callable[[Path], str],
    what: str,
) -> Path:
    """Find ``data_dir/subdir`` or ``data_dir`` itself, whichever holds ``marker``."""
    if data_dir is None:
        raise DataError(f"{what} needs a data_dir. " + help_text(Path("<data_dir>")))
    root = Path(data_dir).expanduser()
    if root.is_file():
        raise DataError(
            f"data_dir {root} is a file; expected a folder holding {subdir}/ (unpack the "
            f"archive first). " + help_text(root.parent)
        )
    if (root / subdir / marker).exists():
        return root / subdir
    if (root / marker).exists():
        return root
    raise DataError(
        f"{what} not found: expected {root / subdir / marker} (or {root / marker} if data_dir "
        f"is the {subdir} folder itself). " + help_text(root)
    )


def load_cifar(data_dir: str | os.PathLike[str], num_classes: int = 10) -> Dataset:
    """Load CIFAR-10 or CIFAR-100 from the official python pickles.

    Expected layout (what the official archives unpack to)::

        data_dir/cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch, batches.meta
        data_dir/cifar-100-python/train, test, meta

    ``data_dir`` may also be the batches folder itself. Each pickle is read through an
    unpickler that admits only numpy's array reconstruction (a tampered file is refused
    without running anything) and validated: keys present, ``data`` uint8 of shape
    (n, 3072) in CHW order, one label per row, labels in range.

    Parameters
    ----------
    data_dir : path-like
        Folder holding the unpacked archive (or the batches folder).
    num_classes : {10, 100}, default 10
        CIFAR-10 or CIFAR-100 (fine labels).

    Returns
    -------
    dataset : Dataset
        Named ``"cifar10"`` or ``"cifar100"``; 32x32 RGB images.

    Raises
    ------
    DataError
        Missing folder or file, a file that is truncated, tampered or has wrong content.
    """
    if num_classes not in _CIFAR_DIRS:
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")
    parent = Path(data_dir).expanduser() if data_dir is not None else Path("<data_dir>")
    first = "data_batch_1" if num_classes == 10 else "train"
    folder = _locate(
        data_dir,
        _CIFAR_DIRS[num_classes],
        first,
        lambda p: _cifar_help(num_classes, p),
        f"CIFAR-{num_classes}",
    )
    if num_classes == 10:
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_file, meta_file = folder / "test_batch", folder / "batches.meta"
        label_key, names_key = "labels", "label_names"
    else:
        train_files = [folder / "train"]
        test_file, meta_file = folder / "test", folder / "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    parts = [_read_cifar_batch(f, label_key, num_classes, parent) for f in train_files]
    x_test, y_test = _read_cifar_batch(test_file, label_key, num_classes, parent)
    names = _read_cifar_names(meta_file, names_key, num_classes, parent)
    return Dataset(
        name=f"cifar{num_classes}",
        x_train=np.concatenate([p[0] for p in parts]),
        y_train=np.concatenate([p[1] for p in parts]),
        x_test=x_test,
        y_test=y_test,
        class_names=names,
    )


# --------------------------------------------------------------------------------------------
# Tiny ImageNet (official zip layout)
# --------------------------------------------------------------------------------------------


def _tiny_help(data_dir: Path | str) -> str:
    return (
        f"Download {TINY_IMAGENET_URL} and unzip it into {data_dir} (e.g. `unzip "
        f"tiny-imagenet-200.zip -d {data_dir}`), which creates {Path(data_dir) / _TINY_DIR}/ "
        "with wnids.txt, words.txt, train/ and val/; pass that parent folder (or the "
        f"{_TINY_DIR} folder itself) as data_dir. cbal never downloads data."
    )


def _read_text(path: Path, help_text: str) -> str:
    try:
        return _regular(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read {path}: {type(exc).__name__}: {exc}. " + help_text) from exc


def load_tiny_imagenet(data_dir: str | os.PathLike[str], image_size: int = 64) -> Dataset:
    """Load Tiny ImageNet (200 classes, 100k train / 10k val images) from the official layout.

    Expected layout (what ``tiny-imagenet-200.zip`` unpacks to)::

        data_dir/tiny-imagenet-200/wnids.txt              one WordNet id per line
        data_dir/tiny-imagenet-200/words.txt              optional: wnid <TAB> names
        data_dir/tiny-imagenet-200/train/<wnid>/images/*.JPEG
        data_dir/tiny-imagenet-200/val/images/*.JPEG
        data_dir/tiny-imagenet-200/val/val_annotations.txt  file <TAB> wnid <TAB> bbox…

    The labelled val set is the test set (the official test set has no labels). Classes are
    the wnids in sorted order (as torchvision's ImageFolder orders them); class names are
    the first synonym in ``words.txt`` when it exists, else the wnid. Images are decoded with
    PIL, converted to RGB (a few are greyscale) and resized if ``image_size != 64``.

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``tiny-imagenet-200/`` (or that folder itself).
    image_size : int, default 64
        Side of the square images.

    Returns
    -------
    dataset : Dataset
        Named ``"tinyimagenet"``.

    Raises
    ------
    DataError
        Missing files or folders, an annotation naming an unknown wnid or a missing image,
        an unreadable image.
    """
    size = _check_size(image_size)
    parent = Path(data_dir).expanduser() if data_dir is not None else Path("<data_dir>")
    root = _locate(data_dir, _TINY_DIR, "wnids.txt", _tiny_help, "Tiny ImageNet")
    help_text = _tiny_help(parent)

    wnids, names = _tiny_classes(root, help_text)
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = _tiny_train(root, wnids, index, help_text)
    test_paths, test_labels = _tiny_val(root, index, help_text)
    return Dataset(
        name="tinyimagenet",
        x_train=_read_images(train_paths, size),
        y_train=np.asarray(train_labels, dtype=np.int64),
        x_test=_read_images(test_paths, size),
        y_test=np.asarray(test_labels, dtype=np.int64),
        class_names=tuple(names),
    )


def _tiny_classes(root: Path, help_text: str) -> tuple[list[str], list[str]]:
    """Tiny ImageNet's wnids in sorted order, and their names (``words.txt``, else the wnid)."""
    wnids_file = root / "wnids.txt"
    listed = [w.strip() for w in _read_text(wnids_file, help_text).splitlines() if w.strip()]
    if len(listed) < 2 or len(set(listed)) != len(listed):
        raise DataError(
            f"Tiny ImageNet file {wnids_file} should list at least 2 distinct WordNet ids, one "
            f"per line; it lists {len(listed)} ({len(set(listed))} distinct). " + help_text
        )
    wnids = sorted(listed)
    index = {w: i for i, w in enumerate(wnids)}

    names = list(wnids)
    words_file = root / "words.txt"
    if words_file.is_file():
        for line in _read_text(words_file, help_text).splitlines():
            wnid, _, words = line.partition("\t")
            if wnid in index and words.strip():
                names[index[wnid]] = words.split(",")[0].strip()

    return wnids, names


def _tiny_train(
    root: Path, wnids: list[str], index: dict[str, int], help_text: str
) -> tuple[list[Path], list[int]]:
    """The train images' paths and labels, one folder per wnid."""
    wnids_file = root / "wnids.txt"
    train_paths: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(
                f"Tiny ImageNet train folder {folder} is missing; expected one "
                f"train/<wnid>/images/ folder per id in {wnids_file}. " + help_text
            )
        files = _list_files(folder)
        if not files:
            raise DataError(
                f"Tiny ImageNet train folder {folder} holds no images; expected the class's "
                "JPEG files. " + help_text
            )
        train_paths.extend(files)
        train_labels.extend([index[wnid]] * len(files))

    return train_paths, train_labels


def _tiny_val(root: Path, index: dict[str, int], help_text: str) -> tuple[list[Path], list[int]]:
    """The labelled val images (the test set), from ``val_annotations.txt``."""
    wnids_file = root / "wnids.txt"
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DataError(
            f"Tiny ImageNet val annotations {annotations} are missing; expected a tab-separated "
            "file of lines 'filename<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1' labelling "
            "val/images/. " + help_text
        )
    test_paths: list[Path] = []
    test_labels: list[int] = []
    for lineno, line in enumerate(_read_text(annotations, help_text).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(
                f"Tiny ImageNet val annotations {annotations}, line {lineno}: expected "
                f"'filename<TAB>wnid<TAB>bbox…', got {line[:80]!r}. " + help_text
            )
        filename, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise DataError(
                f"Tiny ImageNet val annotations {annotations}, line {lineno}: wnid {wnid!r} "
                f"is not listed in {wnids_file}. " + help_text
            )
        image = root / "val" / "images" / filename
        if not image.is_file():
            raise DataError(
                f"Tiny ImageNet val image {image} (named in {annotations}, line {lineno}) is "
                "missing. " + help_text
            )
        test_paths.append(image)
        test_labels.append(index[wnid])
    if not test_paths:
        raise DataError(f"Tiny ImageNet val annotations {annotations} list no images. " + help_text)

    return test_paths, test_labels


# --------------------------------------------------------------------------------------------
# A folder of images, one sub-folder per class
# --------------------------------------------------------------------------------------------


def _scan_class_folders(root: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    _check_disjoint(root, classes)
    found: dict[str, list[Path]] = {}
    for folder in classes:
        files = _list_files(folder)
        if not files:
            raise DataError(
                f"Class folder {folder} holds no images; expected image files (PNG, JPEG, "
                "BMP, …) of that class. Remove the folder or add its images."
            )
        found[folder.name] = files
    if len(found) < 2:
        raise DataError(
            f"Image folder {root} has {len(found)} class folder(s) "
            f"({', '.join(found) or 'none'}); expected at least 2 sub-folders, one per class, "
            "each holding that class's images (or train/ and test/ folders laid out so)."
        )
    return found


def _check_disjoint(root: Path, classes: list[Path]) -> None:
    """A class folder that links to the image folder itself (or to an ancestor, or to another
    class) would count images twice or hold every class: refused."""
    real = {folder: folder.resolve() for folder in classes}
    top = root.resolve()
    for folder, target in real.items():
        if top == target or top.is_relative_to(target):
            raise DataError(
                f"Class folder {folder} links to {target}, which holds the image folder {root} "
                "itself; a class folder must hold only that class's images. Remove the link."
            )
        for other, other_target in real.items():
            if other != folder and other_target.is_relative_to(target):
                raise DataError(
                    f"Class folders {folder} and {other} overlap ({other_target} is inside "
                    f"{target}); each image must belong to one class. Remove the link."
                )


def load_image_folder(
    data_dir: str | os.PathLike[str], image_size: int = 32, test_fraction: float = 0.2
) -> Dataset:
    """Load a folder of images with one sub-folder per class.

    Layouts::

        data_dir/<class>/*.png|jpg|jpeg|bmp|…          split here into train and test
        data_dir/train/<class>/…, data_dir/test/<class>/…  used as given (when both exist)

    Class folders are taken in sorted order; files are searched recursively, hidden files and
    folders (names starting with ".") are skipped, and every other file must be an image PIL
    can read. Images are converted to RGB and resized to ``image_size`` x ``image_size``
    (aspect ratio not kept). Without a test folder, a stratified split with a fixed seed (0)
    puts ``round(n_c * test_fraction)`` images of each class (at least 1, and at least 1 left
    for training) into the test set; a class with a single image goes to train only.

    Parameters
    ----------
    data_dir : path-like
        The image folder.
    image_size : int, default 32
        Side of the square images.
    test_fraction : float, default 0.2
        Share of each class held out for testing, in (0, 1); unused with train/ and test/.

    Returns
    -------
    dataset : Dataset
        Named ``"imagefolder"``.

    Raises
    ------
    DataError
        Missing folder, fewer than 2 classes, an empty class folder, a file that is not an
        image, a test class that has no train folder.
    """
    size = _check_size(image_size)
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if data_dir is None:
        raise DataError("imagefolder needs a data_dir: a folder with one sub-folder per class.")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"Image folder {root} does not exist or is not a folder; expected a folder with one "
            "sub-folder of images per class."
        )

    if (root / "train").is_dir() and (root / "test").is_dir():
        train = _scan_class_folders(root / "train")
        test = _scan_class_folders(root / "test")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise DataError(
                f"Test folder {root / 'test'} has classes with no train folder in "
                f"{root / 'train'}: {', '.join(unknown)}; expected the same class folders."
            )
        class_names = tuple(train)
        index = {c: i for i, c in enumerate(class_names)}
        tr_paths = [p for c in class_names for p in train[c]]
        tr_labels = [index[c] for c in class_names for _ in train[c]]
        te_paths = [p for c in test for p in test[c]]
        te_labels = [index[c] for c in test for _ in test[c]]
        x_train = _read_images(tr_paths, size)
        x_test = _read_images(te_paths, size)
        y_train = np.asarray(tr_labels, dtype=np.int64)
        y_test = np.asarray(te_labels, dtype=np.int64)
    else:
        found = _scan_class_folders(root)
        class_names = tuple(found)
        paths = [p for c in class_names for p in found[c]]
        y = np.asarray([i for i, c in enumerate(class_names) for _ in found[c]], dtype=np.int64)
        x = _read_images(paths, size)
        rng = np.random.default_rng(TEST_SPLIT_SEED)
        test_parts: list[NDArray[np.int64]] = []
        for c in range(len(class_names)):
            members = np.flatnonzero(y == c)
            n = members.size
            k = 0 if n < 2 else min(max(round(n * test_fraction), 1), n - 1)
            test_parts.append(rng.choice(members, size=k, replace=False))
        test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
        mask = np.ones(y.shape[0], dtype=bool)
        mask[test_idx] = False
        x_train, y_train = x[mask], y[mask]
        x_test, y_test = x[test_idx], y[test_idx]

    return Dataset(
        name="imagefolder",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
    )


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    image_size: int = 32,
    test_per_class: int = 30,
) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : {"digits", "cifar10", "cifar100", "tinyimagenet", "imagefolder"}
        Which loader to use.
    data_dir : path-like, optional
        Where the files are (unused for ``"digits"``, required for the others).
    image_size : int, default 32
        Side of the square images for ``"tinyimagenet"`` (native 64: pass 64 for the paper's
        setting) and ``"imagefolder"``. Digits (8x8) and CIFAR (32x32) keep their native size.
    test_per_class : int, default 30
        Test images per class for ``"digits"`` (the others come with their own test sets or
        a stratified split).

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    ValueError
        Unknown name or invalid argument.
    DataError
        Missing or damaged files.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    size = _check_size(image_size)
    try:
        return _load(name, data_dir, size, test_per_class)
    except OSError as exc:  # e.g. a path longer than the system allows
        shown = str(data_dir) if len(str(data_dir)) <= 80 else str(data_dir)[:77] + "..."
        raise DataError(f"Cannot read data_dir {shown}: {exc.strerror or exc}") from None


def _load(
    name: str, data_dir: str | os.PathLike[str] | None, size: int, test_per_class: int
) -> Dataset:
    if name == "digits":
        return load_digits_dataset(test_per_class=test_per_class)
    if name in ("cifar10", "cifar100"):
        num_classes = 10 if name == "cifar10" else 100
        if data_dir is None:
            raise DataError(f"{name} needs a data_dir. " + _cifar_help(num_classes, "<data_dir>"))
        return load_cifar(data_dir, num_classes=num_classes)
    if name == "tinyimagenet":
        if data_dir is None:
            raise DataError(f"{name} needs a data_dir. " + _tiny_help("<data_dir>"))
        return load_tiny_imagenet(data_dir, image_size=size)
    if data_dir is None:
        raise DataError(
            "imagefolder needs a data_dir: a folder with one sub-folder of images per class."
        )
    return load_image_folder(data_dir, image_size=size)
