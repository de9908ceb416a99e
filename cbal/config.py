"""RunConfig: every knob of one active-learning run, validated, with presets and JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cbal.strategies.balance import MIP_GAP

CONFIG_VERSION = 3
# Fields added after each older version, with the value its runs actually used: a stored config
# loads (and resumes) as the run it was. Version 1 drew its initial labeled set at random;
# version 2's binary solver proved optimality to a relative gap of 1e-9 (mip_gap 0).
_ADDED_AFTER: dict[int, dict[str, Any]] = {
    1: {"initial_sampling": "random", "compat": "clean"},
    2: {"solver_mip_gap": 0.0},
}

# The lists of choices, one place each (cbal.data and the UI read them from here).
DATASETS = ("digits", "cifar10", "cifar100", "tinyimagenet", "imagefolder")
PROFILES = ("step", "exp")  # how the pool's class sizes fall from head to tail
MODELS = ("convfc", "smallcnn", "resnet18")
# What only :func:`cbal.run` sets, for data and networks given as Python objects: arrays held
# in memory, a linear head on feature arrays, a user's torch model factory.
IN_MEMORY = "memory"
ARRAY_MODELS = ("linear", "custom")
DEVICES = ("auto", "cpu", "cuda")
AUGMENTS = ("crop-flip", "crop", "none")
# The smallest image side each model can take (convfc pools any side to its grid, smallcnn pools
# once, the ResNet's CIFAR stem halves the maps three times), and bounds past which a value can
# only be a typo.
MIN_IMAGE_SIZE = {"convfc": 1, "smallcnn": 2, "resnet18": 8, "linear": 1, "custom": 1}
# The fewest images a training batch of each model may hold (convfc's fully connected
# BatchNorm needs two; the others take one).
MIN_BATCH = {"convfc": 2}
MAX_IMAGE_SIZE = 1024
MAX_LR = 10.0
MAX_LAM = 1e6
# a bad value is shown, not dumped: a YAML alias bomb would take forever to repr
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 20, 10
_SHORT.maxstring = _SHORT.maxother = 200
MC_SOURCES = ("dropout", "batchnorm")
INITIAL_SAMPLINGS = ("balanced", "random")  # how the initial labeled set is drawn
COMPATS = ("clean", "paper")
# Dropout before the classifier for MC-dropout BALD; every other network has none (the paper's).
MC_DROPOUT = 0.3
# Known class counts, used for the paper's per-dataset λ defaults before any data is loaded.
KNOWN_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}
MAX_SEED = 2**32 - 1  # what every seeded library (numpy, torch, CUDA) accepts as one seed


class ConfigError(ValueError):
    """A configuration field has a value that is not allowed.

    ``field`` names the field, ``value`` is what was given and ``allowed`` says what is accepted.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={_SHORT.repr(value)} is not allowed: expected {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling to/from joblib and Dask workers
        return (type(self), (self.field, self.value, self.allowed))


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one run. Build with :func:`make_config` to get validation.

    ``cycles`` acquisition steps of ``budget`` images each: the model is trained and evaluated
    ``cycles + 1`` times, on ``initial_labeled``, ``initial_labeled + budget``, ... labels.
    ``lam=None`` means the paper's default for the strategy and the dataset's class count.
    ``mc_source=None`` and ``dropout=None`` are filled in by :func:`make_config` (see
    :func:`_derived`), so a stored config always says which network the run trained.
    ``compat="paper"`` reproduces the released code's quirks (truncated Ω, rounded KCenterGreedy
    embeddings, pool inference on augmented images, BatchNorm MC passes, its Entropy L1 Pseudo
    Label quota rules) so their effect can be measured.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int = 32
    test_per_class: int = 30
    imbalance_factor: float = 0.1
    imbalance_profile: str = "step"
    strategy: str = "entropy"
    lam: float | None = None
    solver: str = "binary"
    solver_time_limit: float = 60.0
    solver_mip_gap: float = MIP_GAP
    initial_labeled: int = 50
    initial_sampling: str = "balanced"
    budget: int = 20
    cycles: int = 6
    model: str = "convfc"
    dropout: float | None = None
    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 1024
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = (20, 25)
    lr_gamma: float = 0.5
    augment: str = "crop"
    mc_passes: int = 10
    mc_source: str | None = None
    compat: str = "clean"
    seed: int = 0
    device: str = "auto"
    save_pool_arrays: bool = True
    save_embeddings: bool = True
    preset: str | None = None
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return make_config(**data)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("config.json", text[:40], f"valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError("config.json", type(data).__name__, "a JSON object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with ``changes``; a derived field (mc_source, dropout) that still
        holds its derived value is derived again, so ``replace(strategy="bald")`` on an Entropy
        config gets BALD's dropout rather than Entropy's 0."""
        values = {**self.to_dict(), **changes}
        for name, derive in _DERIVED.items():
            if name not in changes and getattr(self, name) == derive(self.to_dict()):
                values[name] = None
        return make_config(**values)

    @property
    def num_classes_hint(self) -> int | None:
        return KNOWN_CLASSES.get(self.dataset)


PRESETS: dict[str, dict[str, Any]] = {
    # The offline default: sklearn's 8x8 digits, a small conv + fully connected net, sizes for
    # a quick CPU comparison (the earlier small CNN at batch 32, lr 0.05 was 3x slower to train
    # and no more accurate: bench/bench_loop.py times both).
    # Each tail class holds 14 pool images at IF 0.1; 20 × 6 labels ask at most 12 of each, so
    # no class Ω asks for runs out before the last selection (whatever the strategy picks).
    "digits": dict(
        dataset="digits",
        model="convfc",
        initial_labeled=50,
        budget=20,
        cycles=6,
        epochs=30,
        batch_size=64,
        lr=0.1,
        lr_milestones=(20, 25),
        augment="crop",
        imbalance_factor=0.1,
        test_per_class=30,
        save_embeddings=True,
    ),
}
_PAPER = dict(
    model="resnet18",
    initial_labeled=5000,
    budget=2500,
    cycles=5,
    epochs=100,
    batch_size=256,
    eval_batch_size=2048,
    lr=0.02,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    lr_milestones=(60, 80),
    lr_gamma=0.5,
    augment="crop-flip",
    imbalance_factor=0.1,
    save_embeddings=False,
)
PRESETS["paper-cifar10"] = dict(_PAPER, dataset="cifar10")
PRESETS["paper-cifar100"] = dict(_PAPER, dataset="cifar100")
PRESETS["paper-tinyimagenet"] = dict(_PAPER, dataset="tinyimagenet", image_size=64)


def preset(name: str, **overrides: Any) -> RunConfig:
    """The named preset with ``overrides`` applied, validated."""
    if name not in PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(PRESETS)}")
    return make_config(**{**PRESETS[name], **overrides, "preset": name})


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def field_names() -> list[str]:
    return list(_FIELDS)


def _derived_mc_source(values: dict[str, Any]) -> str:
    # the released code's "MC dropout" is BatchNorm in train mode: its network has no dropout
    return "batchnorm" if values.get("compat", "clean") == "paper" else "dropout"


def _derived_dropout(values: dict[str, Any]) -> float:
    from cbal.strategies import STRATEGIES

    strategy = STRATEGIES.get(values.get("strategy", "entropy"))
    mc_dropout = strategy is not None and strategy.needs_mc and values["mc_source"] == "dropout"
    return MC_DROPOUT if mc_dropout else 0.0


# Fields whose None means "derive from the others", in dependency order.
_DERIVED = {"mc_source": _derived_mc_source, "dropout": _derived_dropout}


def make_config(**values: Any) -> RunConfig:
    """Build a validated :class:`RunConfig`; raises :class:`ConfigError` naming the bad field."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            unknown[0], values[unknown[0]], f"a field of RunConfig ({', '.join(_FIELDS)})"
        )
    version = values.get("version", CONFIG_VERSION)
    if version in _ADDED_AFTER:
        for old in range(version, CONFIG_VERSION):
            values = {**_ADDED_AFTER[old], **values}
        values["version"] = CONFIG_VERSION
    elif version != CONFIG_VERSION:
        raise ConfigError(
            "version", version, f"{CONFIG_VERSION} (this cbal's config format); re-create the run"
        )
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    solver = coerced.get("solver")
    if isinstance(solver, str):  # names older runs stored
        from cbal.strategies.balance import METHOD_ALIASES

        coerced["solver"] = METHOD_ALIASES.get(solver, solver)
    for name, derive in _DERIVED.items():
        if coerced.get(name) is None:
            coerced[name] = derive(coerced)
    cfg = RunConfig(**coerced)
    _validate(cfg)
    return cfg


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELDS[name].type
    if value is None and "None" in str(kind):
        return None
    if "tuple" in str(kind):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, value, "a list of integers")
        return tuple(_as_int(name, v) for v in value)
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(name, value, "true or false")
    if kind.startswith("int"):
        return _as_int(name, value)
    if kind.startswith("float"):
        if isinstance(value, bool):
            raise ConfigError(name, value, "a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(name, value, "a number") from None
    if not isinstance(value, str):
        raise ConfigError(name, value, "a string")
    return value


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(name, value, "an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ConfigError(name, value, "an integer")


def _choice(cfg: RunConfig, name: str, allowed: tuple[str, ...] | list[str]) -> None:
    if getattr(cfg, name) not in allowed:
        raise ConfigError(name, getattr(cfg, name), f"one of {', '.join(allowed)}")


def _at_least(cfg: RunConfig, name: str, low: float) -> None:
    value = getattr(cfg, name)
    if not math.isfinite(value) or value < low:
        raise ConfigError(name, value, f"a finite number >= {low}")


def _within(cfg: RunConfig, name: str, low: float, high: float) -> None:
    value = getattr(cfg, name)
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(name, value, f"a number in [{low:g}, {high:g}]")


def _validate(cfg: RunConfig) -> None:
    from cbal.strategies import STRATEGIES  # the registry is pure numpy: cheap to import
    from cbal.strategies.balance import METHODS

    _choice(cfg, "dataset", (*DATASETS, IN_MEMORY))
    if cfg.dataset not in ("digits", IN_MEMORY) and not cfg.data_dir:
        raise ConfigError(
            "data_dir", cfg.data_dir, f"a local folder with the {cfg.dataset} files (required)"
        )
    _choice(cfg, "imbalance_profile", PROFILES)
    _choice(cfg, "strategy", list(STRATEGIES))
    _choice(cfg, "solver", list(METHODS))
    _choice(cfg, "model", (*MODELS, *ARRAY_MODELS))
    _choice(cfg, "device", DEVICES)
    _choice(cfg, "augment", AUGMENTS)
    _choice(cfg, "initial_sampling", INITIAL_SAMPLINGS)
    _choice(cfg, "mc_source", MC_SOURCES)
    _choice(cfg, "compat", COMPATS)
    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise ConfigError("preset", cfg.preset, f"one of {', '.join(PRESETS)} or null")
    if not (math.isfinite(cfg.imbalance_factor) and 0 < cfg.imbalance_factor <= 1):
        raise ConfigError("imbalance_factor", cfg.imbalance_factor, "a number in (0, 1]")
    if cfg.lam is not None:
        _within(cfg, "lam", 0.0, MAX_LAM)
        if not STRATEGIES[cfg.strategy].uses_lam and cfg.lam != 0:
            raise ConfigError(
                "lam", cfg.lam, f"unset: strategy {cfg.strategy!r} has no λ (the -cb ones do)"
            )
    for name in ("image_size", "test_per_class", "initial_labeled", "budget", "cycles"):
        _at_least(cfg, name, 1)
    for name in ("epochs", "batch_size", "eval_batch_size", "mc_passes"):
        _at_least(cfg, name, 1)
    for name in ("lr", "solver_time_limit", "lr_gamma"):
        if not (math.isfinite(getattr(cfg, name)) and getattr(cfg, name) > 0):
            raise ConfigError(name, getattr(cfg, name), "a finite number > 0")
    if not 0 <= cfg.solver_mip_gap < 1:
        raise ConfigError("solver_mip_gap", cfg.solver_mip_gap, "a number in [0, 1)")
    _at_least(cfg, "weight_decay", 0)
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError("seed", cfg.seed, f"an integer in 0 … {MAX_SEED}")
    _within(cfg, "image_size", 1, MAX_IMAGE_SIZE)
    _within(cfg, "lr", 0, MAX_LR)
    if not 0 <= cfg.momentum < 1:
        raise ConfigError("momentum", cfg.momentum, "a number in [0, 1)")
    if any(m < 1 or m > cfg.epochs for m in cfg.lr_milestones) or list(cfg.lr_milestones) != sorted(
        cfg.lr_milestones
    ):
        raise ConfigError(
            "lr_milestones", list(cfg.lr_milestones), f"increasing epochs within 1..{cfg.epochs}"
        )
    _validate_network(cfg)


def _validate_network(cfg: RunConfig) -> None:
    from cbal.strategies import STRATEGIES

    assert cfg.dropout is not None  # derived by make_config
    if not (math.isfinite(cfg.dropout) and 0 <= cfg.dropout < 1):
        raise ConfigError("dropout", cfg.dropout, "a number in [0, 1)")
    low = MIN_BATCH.get(cfg.model, 1)
    # a batch holds at most batch_size images, and the first training only initial_labeled
    for name in ("batch_size", "initial_labeled"):
        if getattr(cfg, name) < low:
            raise ConfigError(
                name, getattr(cfg, name), f">= {low} for {cfg.model} (images per training batch)"
            )
    if not STRATEGIES[cfg.strategy].needs_mc:
        return
    if cfg.mc_passes < 2:
        raise ConfigError("mc_passes", cfg.mc_passes, ">= 2 for BALD (MC passes)")
    if cfg.mc_source == "dropout" and cfg.dropout == 0:
        raise ConfigError(
            "dropout", cfg.dropout, "> 0 for BALD with mc_source=dropout (or mc_source=batchnorm)"
        )
    if cfg.mc_source == "batchnorm" and cfg.dropout != 0:
        raise ConfigError(
            "dropout", cfg.dropout, "0 with mc_source=batchnorm (its MC passes use no dropout)"
        )


_MODEL_NAMES = {
    "resnet18": "ResNet-18 (CIFAR stem)",
    "convfc": "conv + fully connected net",
    "smallcnn": "small CNN",
    "linear": "linear head on the features",
    "custom": "the user's network (model_fn)",
}


def describe_network(cfg: RunConfig) -> str:
    """Which network the run trains and where its MC randomness comes from, in one line."""
    from cbal.strategies import STRATEGIES

    head = f"dropout {cfg.dropout:g} before the classifier" if cfg.dropout else "no dropout"
    if not STRATEGIES[cfg.strategy].needs_mc:
        mc = "no MC passes"
    elif cfg.mc_source == "batchnorm":
        mc = f"{cfg.mc_passes} MC passes with BatchNorm in train mode (running statistics kept)"
    else:
        mc = f"{cfg.mc_passes} MC-dropout passes"
    return f"{_MODEL_NAMES[cfg.model]}, {head}; {mc}"


def run_lam(
    cfg: RunConfig, num_classes: int | None = None, cycles: Sequence[Mapping[str, Any]] = ()
) -> float | None:
    """The λ a run uses, the one answer every view gives: None for a strategy without λ; the
    recorded λ once a cycle is on disk; else the configured one; else the paper's default for
    ``num_classes`` (given, or known from the dataset's name); None while that is unknown."""
    from cbal.strategies import STRATEGIES

    strategy = STRATEGIES[cfg.strategy]
    if not strategy.uses_lam:
        return None
    if cycles and cycles[0].get("lam") is not None:
        return float(cycles[0]["lam"])
    if cfg.lam is not None:
        return cfg.lam
    classes = num_classes or KNOWN_CLASSES.get(cfg.dataset)
    return strategy.default_lam(classes) if classes else None


def lam_text(cfg: RunConfig, cycles: Sequence[Mapping[str, Any]] = ()) -> str:
    """:func:`run_lam` as a table shows it: "–" without λ, "default" while not yet known."""
    from cbal.strategies import STRATEGIES

    lam = run_lam(cfg, cycles=cycles)
    if lam is not None:
        return f"{lam:g}"
    return "default" if STRATEGIES[cfg.strategy].uses_lam else "–"
