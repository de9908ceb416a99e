"""Tiny data sets in the exact official on-disk formats, and ways to damage them.

Each ``make_*`` function writes into the folder it is given and returns the path to pass as
``data_dir`` to :mod:`cbal.data`. Pixels are seeded random noise; a few images per class.

CIFAR pickles are written, by default, the way the official files were: Python 2 cPickle,
protocol 2, so strings and the arrays' raw buffers are 8-bit strings (``BINSTRING``) and numpy's
rebuild function is named ``numpy.core.multiarray._reconstruct``. ``style="py3"`` writes them
with Python 3's own pickler instead (bytes become ``_codecs.encode(..., "latin1")`` calls and
the function is ``numpy._core.multiarray._reconstruct``), as a re-pickled copy would look.
"""

from __future__ import annotations

import os
import pickle
import shlex
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

__all__ = [
    "CIFAR10_NAMES",
    "TINY_WNIDS",
    "MaliciousPickle",
    "cifar100_names",
    "make_cifar10",
    "make_cifar100",
    "make_image_folder",
    "make_tiny_imagenet",
    "truncate_file",
    "write_bad_cifar_batch",
    "write_cifar_pickle",
    "write_malicious_pickle",
]

CIFAR10_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TINY_WNIDS = ("n01443537", "n01629819", "n01641577", "n01644900")
_TINY_WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
    "n01644900": "tailed frog, bell toad, ribbed toad, tailed toad, Ascaphus trui",
}

PathLike = str | os.PathLike[str]


def cifar100_names() -> tuple[str, ...]:
    """Stand-in fine class names for the CIFAR-100 fixture ("class000" … "class099")."""
    return tuple(f"class{i:03d}" for i in range(100))


# --------------------------------------------------------------------------------------------
# Pickles as the originals were written
# --------------------------------------------------------------------------------------------


# The pure-Python pickler, whose per-type dispatch table can be overridden (the C one can't).
_PurePickler: Any = pickle._Pickler  # type: ignore[attr-defined]


class _Py2StylePickler(_PurePickler):
    """Protocol-2 pickler that writes what Python 2's cPickle wrote for the CIFAR files."""

    dispatch: ClassVar[dict[type, Any]] = dict(_PurePickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        # Python 2 str -> (SHORT_)BINSTRING; loads as str under encoding="latin1".
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct" and "numpy" in str(
            getattr(obj, "__module__", "")
        ):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def write_cifar_pickle(path: PathLike, obj: Any, style: str = "py2") -> Path:
    """Pickle ``obj`` to ``path`` with protocol 2, Python 2 style (default) or Python 3 style."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        if style == "py2":
            _Py2StylePickler(fh, protocol=2).dump(obj)
        elif style == "py3":
            pickle.dump(obj, fh, protocol=2)
        else:
            raise ValueError(f"style must be 'py2' or 'py3', got {style!r}")
    return path


def _labels(rng: np.random.Generator, n: int, num_classes: int) -> list[int]:
    # Every class appears (n >= num_classes), in random order.
    return [int(v) for v in rng.permutation(np.arange(n) % num_classes)]


def _batch(
    rng: np.random.Generator,
    n: int,
    num_classes: int,
    label: str,
    label_key: bytes,
    extra: dict[bytes, Any] | None = None,
) -> dict[bytes, Any]:
    labels = _labels(rng, n, num_classes)
    batch: dict[bytes, Any] = {
        b"batch_label": label.encode(),
        label_key: labels,
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{label.replace(' ', '_')}_{i}.png".encode() for i in range(n)],
    }
    if extra:
        batch.update(extra)
    return batch


def make_cifar10(
    root: PathLike, n_per_batch: int = 20, n_test: int = 20, seed: int = 0, style: str = "py2"
) -> Path:
    """Write a tiny CIFAR-10 in the official python layout under ``root``.

    Creates ``root/cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5``,
    ``test_batch`` and ``batches.meta`` (keys ``data``, ``labels``, ``batch_label``,
    ``filenames``; meta ``label_names``, ``num_cases_per_batch``, ``num_vis``).
    Returns ``root`` (the parent, as a user would pass it).
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        write_cifar_pickle(
            folder / f"data_batch_{i}",
            _batch(rng, n_per_batch, 10, f"training batch {i} of 5", b"labels"),
            style,
        )
    write_cifar_pickle(
        folder / "test_batch", _batch(rng, n_test, 10, "testing batch 1 of 1", b"labels"), style
    )
    meta = {
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [n.encode() for n in CIFAR10_NAMES],
        b"num_vis": 3072,
    }
    write_cifar_pickle(folder / "batches.meta", meta, style)
    (folder / "readme.html").write_text("<meta HTTP-EQUIV='REFRESH' content='0; url=...'>\n")
    return root


def make_cifar100(
    root: PathLike, n_train: int = 200, n_test: int = 100, seed: int = 0, style: str = "py2"
) -> Path:
    """Write a tiny CIFAR-100 in the official python layout under ``root``.

    Creates ``root/cifar-100-python/`` with ``train``, ``test`` (keys ``data``,
    ``fine_labels``, ``coarse_labels``, ``batch_label``, ``filenames``) and ``meta``
    (``fine_label_names``, ``coarse_label_names``). Returns ``root``.
    """
    root = Path(root)
    folder = root / "cifar-100-python"
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = _batch(rng, n, 100, name, b"fine_labels")
        batch[b"coarse_labels"] = [lab // 5 for lab in batch[b"fine_labels"]]
        write_cifar_pickle(folder / name, batch, style)
    meta = {
        b"fine_label_names": [n.encode() for n in cifar100_names()],
        b"coarse_label_names": [f"super{i:02d}".encode() for i in range(20)],
    }
    write_cifar_pickle(folder / "meta", meta, style)
    return root


def write_bad_cifar_batch(
    path: PathLike,
    kind: str,
    label_key: bytes = b"labels",
    num_classes: int = 10,
    style: str = "py2",
) -> Path:
    """Overwrite ``path`` with a CIFAR-like pickle that is wrong in one way.

    ``kind``: ``"wrong_keys"`` (no ``data``), ``"no_labels"``, ``"wrong_dtype"`` (float32 data),
    ``"wrong_shape"`` (rows of 1024), ``"label_range"`` (a label == num_classes),
    ``"label_length"`` (one label short), ``"label_type"`` (labels are strings),
    ``"data_not_array"`` (data is a list), ``"not_dict"`` (a list at top level).
    """
    rng = np.random.default_rng(1)
    n = 12
    data: Any = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels: Any = _labels(rng, n, num_classes)
    obj: Any = {b"batch_label": b"bad", b"data": data, label_key: labels}
    if kind == "wrong_keys":
        obj = {b"batch_label": b"bad", b"pixels": data, label_key: labels}
    elif kind == "no_labels":
        del obj[label_key]
    elif kind == "wrong_dtype":
        obj[b"data"] = data.astype(np.float32)
    elif kind == "wrong_shape":
        obj[b"data"] = data[:, :1024]
    elif kind == "label_range":
        obj[label_key] = [num_classes, *labels[1:]]
    elif kind == "label_length":
        obj[label_key] = labels[:-1]
    elif kind == "label_type":
        obj[label_key] = [str(v).encode() for v in labels]
    elif kind == "data_not_array":
        obj[b"data"] = [1, 2, 3]
    elif kind == "not_dict":
        obj = [data, labels]
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return write_cifar_pickle(path, obj, style)


class MaliciousPickle:
    """Unpickling this calls ``os.system(command)``: what a tampered data file could do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def write_malicious_pickle(path: PathLike, marker: PathLike, nested: bool = True) -> Path:
    """Write a pickle at ``path`` that, if unpickled without restriction, creates ``marker``.

    With ``nested`` the payload hides under the ``data`` key of an otherwise valid-looking
    batch dict, after ordinary numpy content; else it is the top-level object.
    """
    payload = MaliciousPickle(f"touch {shlex.quote(str(marker))}")
    obj: Any = payload
    if nested:
        obj = {b"labels": [0, 1], b"ok": np.zeros((2, 3072), np.uint8), b"data": payload}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)
    return path


def truncate_file(path: PathLike, keep_fraction: float = 0.5) -> Path:
    """Cut ``path`` to the first ``keep_fraction`` of its bytes (an interrupted download)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


# --------------------------------------------------------------------------------------------
# Image-based formats
# --------------------------------------------------------------------------------------------


def _noise_image(rng: np.random.Generator, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    w, h = size
    if mode == "L":
        return Image.fromarray(rng.integers(0, 256, size=(h, w), dtype=np.uint8), mode="L")
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8), mode="RGB")


def make_tiny_imagenet(
    root: PathLike,
    wnids: tuple[str, ...] = TINY_WNIDS,
    n_train_per_class: int = 3,
    n_val_per_class: int = 2,
    seed: int = 0,
    with_words: bool = True,
) -> Path:
    """Write a tiny Tiny ImageNet in the official layout under ``root``.

    Creates ``root/tiny-imagenet-200/`` with ``wnids.txt``, ``words.txt`` (with extra
    unrelated ids, like the real 82k-line file; skipped when ``with_words`` is false),
    ``train/<wnid>/images/<wnid>_<k>.JPEG`` plus ``train/<wnid>/<wnid>_boxes.txt``,
    ``val/images/val_<k>.JPEG`` with ``val/val_annotations.txt`` (tab-separated filename, wnid,
    bbox), and an unlabelled ``test/images/``. 64x64 JPEGs; the first train image of each
    class is greyscale (as some real ones are). Returns ``root``.
    """
    root = Path(root)
    top = root / "tiny-imagenet-200"
    rng = np.random.default_rng(seed)
    top.mkdir(parents=True, exist_ok=True)
    (top / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    if with_words:
        lines = ["n00001740\tentity", "n00001930\tphysical entity"]
        lines += [f"{w}\t{_TINY_WORDS.get(w, w + ' thing')}" for w in wnids]
        (top / "words.txt").write_text("\n".join(lines) + "\n")
    for w in wnids:
        images = top / "train" / w / "images"
        images.mkdir(parents=True, exist_ok=True)
        boxes = []
        for k in range(n_train_per_class):
            mode = "L" if k == 0 else "RGB"
            _noise_image(rng, (64, 64), mode).save(images / f"{w}_{k}.JPEG", format="JPEG")
            boxes.append(f"{w}_{k}.JPEG\t0\t0\t63\t63")
        (top / "train" / w / f"{w}_boxes.txt").write_text("\n".join(boxes) + "\n")
    val_images = top / "val" / "images"
    val_images.mkdir(parents=True, exist_ok=True)
    annotations = []
    k = 0
    for _ in range(n_val_per_class):
        for w in wnids:
            name = f"val_{k}.JPEG"
            _noise_image(rng, (64, 64)).save(val_images / name, format="JPEG")
            annotations.append(f"{name}\t{w}\t{k % 10}\t5\t60\t62")
            k += 1
    (top / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    test_images = top / "test" / "images"
    test_images.mkdir(parents=True, exist_ok=True)
    _noise_image(rng, (64, 64)).save(test_images / "test_0.JPEG", format="JPEG")
    return root


def make_image_folder(
    root: PathLike,
    classes: tuple[str, ...] = ("cat", "dog", "fish"),
    n_per_class: int = 5,
    seed: int = 0,
    split: bool = False,
    n_test_per_class: int = 2,
    size: tuple[int, int] = (20, 16),
    ext: str = "png",
) -> Path:
    """Write a folder of images, one sub-folder per class, under ``root / "images"``.

    With ``split`` the layout is ``images/train/<class>/`` (``n_per_class`` each) and
    ``images/test/<class>/`` (``n_test_per_class`` each); else ``images/<class>/``. Images are
    ``size`` (width, height) random RGB noise, saved as ``ext`` ("png", "jpg", "bmp"). A
    hidden ``.DS_Store`` file is added to the first class (loaders should skip hidden files).
    Returns the ``images`` folder.
    """
    rng = np.random.default_rng(seed)
    top = Path(root) / "images"
    layout = [("train", n_per_class), ("test", n_test_per_class)] if split else [("", n_per_class)]
    for sub, n in layout:
        for c in classes:
            folder = top / sub / c if sub else top / c
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                _noise_image(rng, size).save(folder / f"{c}_{k}.{ext}")
    (top / ("train" if split else "") / classes[0] / ".DS_Store").write_bytes(b"\x00\x01junk")
    return top


def cycle_record(k: int, accuracy: float = 0.5, **fields: Any) -> dict[str, Any]:
    """A cycles.jsonl record with every key the store requires (two classes)."""
    return {
        "cycle": k,
        "strategy": "entropy",
        "lam": 0.0,
        "labeled": 10 + k,
        "accuracy": accuracy,
        "per_class_accuracy": [accuracy, None],
        "labeled_counts": [10 + k, 0],
        "labeled_l1": 1.0,
        "selected_counts": None,
        "batch_l1": None,
        "timings": {"train": 0.1},
        **fields,
    }
