"""cbal dashboard: the Launch page (home) and the navigation to the Live and Runs pages.

Start with ``streamlit run app.py`` (bound to 127.0.0.1 by .streamlit/config.toml). Launch sets
up a comparison of strategies and shows it live; the runs train in background processes
(cbal.runner), so closing the page does not stop them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import streamlit as st

from cbal import config as config_mod
from cbal import runner, ui
from cbal.config import (
    DATASETS,
    DEVICES,
    KNOWN_CLASSES,
    MAX_SEED,
    MODELS,
    PRESETS,
    PROFILES,
    ConfigError,
    RunConfig,
)
from cbal.data import DataError
from cbal.loop import prepare
from cbal.store import Store
from cbal.strategies import STRATEGIES
from cbal.sweep import SweepSpec, expand

# the form's fields (RunConfig names) that a preset fills, and every label the errors may name
PRESET_FIELDS = (
    "dataset",
    "imbalance_factor",
    "imbalance_profile",
    "initial_labeled",
    "budget",
    "cycles",
    "epochs",
    "lr_milestones",
    "model",
    "lr",
    "batch_size",
)
LABELS = {
    "dataset": "Dataset",
    "data_dir": "Data folder",
    "imbalance_factor": "Imbalance factor (IF)",
    "imbalance_profile": "Imbalance profile",
    "initial_labeled": "Initial labeled set",
    "budget": "Budget per cycle",
    "cycles": "Cycles",
    "epochs": "Epochs per cycle",
    "lr_milestones": "LR milestones (epochs)",
    "model": "Model",
    "lr": "Learning rate",
    "batch_size": "Batch size",
    "device": "Device",
    "strategy": "Strategies",
    "lam": "λ",
    "seed": "Seeds",
}
DATA_HELP = {
    "digits": "scikit-learn's bundled 8×8 digits: no folder needed.",
    "cifar10": "A folder holding cifar-10-batches-py/ (the CIFAR-10 python version).",
    "cifar100": "A folder holding cifar-100-python/ (the CIFAR-100 python version).",
    "tinyimagenet": "A folder holding tiny-imagenet-200/ (the official zip, extracted).",
    "imagefolder": "A folder with one sub-folder of images per class (or train/ and test/).",
}
DEFAULT_STRATEGIES = ["entropy", "entropy-cb"]


def apply_preset() -> None:
    """Fill the form from the chosen preset (data folder, strategies, seeds, device stay)."""
    cfg = RunConfig(**PRESETS[st.session_state["f_preset"]])  # unvalidated: no data folder yet
    for name in PRESET_FIELDS:
        value = getattr(cfg, name)
        st.session_state[f"f_{name}"] = (
            ", ".join(map(str, value)) if name == "lr_milestones" else value
        )


def init_form() -> None:
    ss = st.session_state
    if "f_preset" not in ss:
        ss["f_preset"] = "digits"
        apply_preset()
    for key, value in {
        "f_data_dir": "",
        "f_strategies": DEFAULT_STRATEGIES,
        "f_seeds": "0",
        "f_device": "auto",
    }.items():
        ss.setdefault(key, value)


def parse_seeds(text: str) -> list[int]:
    """'0, 1, 2' → [0, 1, 2]; a ConfigError naming the seed field otherwise."""
    parts = text.replace(",", " ").split()
    allowed = f"whole numbers from 0 to {MAX_SEED} separated by commas, e.g. 0, 1, 2"
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError("seed", text, allowed)
    seeds = sorted({int(p) for p in parts})
    if seeds[-1] > MAX_SEED:
        raise ConfigError("seed", seeds[-1], allowed)
    return seeds


@st.cache_data(show_spinner="Checking the data…", max_entries=64)
def check_data(cfg_json: str) -> dict[str, Any]:
    """Load the data and build the pool as the run will; the problem, or a summary."""
    try:
        prep = prepare(RunConfig.from_json(cfg_json))
    except (ConfigError, DataError, ValueError, OSError) as exc:
        return {"error": explain(exc)}
    counts = prep.pool.pool_counts
    return {
        "classes": prep.num_classes,
        "train": len(prep.dataset.y_train),
        "test": len(prep.dataset.y_test),
        "pool": len(prep.pool.unlabeled),
        "head": int(counts.max()),
        "tail": int(counts.min()),
    }


_FIELD_NAMES = re.compile(r"\b(" + "|".join(LABELS) + r")=")


def in_labels(text: str) -> str:
    """``text`` with the config's field names (``budget=25``) written as the form's labels."""
    return _FIELD_NAMES.sub(lambda m: f"{LABELS[m[1]]} = ", text)


def explain(exc: Exception, label: str | None = None) -> str:
    """The error in the form's words, with the field it concerns in bold (a data problem
    concerns the data folder); never a config field name."""
    if not isinstance(exc, ConfigError):
        return f"**{LABELS['data_dir']}**: {in_labels(str(exc))}"
    label = label or LABELS.get(exc.field, exc.field)
    value = exc.value
    if value is None or value == "":
        return f"**{label}**: missing; expected {in_labels(exc.allowed)}"
    given = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    given = given if len(given) <= 24 else given[:20] + "…"
    return f"**{label}**: {given} is not allowed; expected {in_labels(exc.allowed)}"


def form_fields(store: Store) -> None:
    """The widgets; their values live in st.session_state under ``f_<field>``.

    The number fields have no min/max: the browser would refuse an out-of-range value silently
    and keep the old one, while :func:`validate` names the field and what it allows."""
    ss = st.session_state
    c1, c2, c3 = st.columns(3)
    with c1:
        st.selectbox(
            "Preset",
            list(PRESETS),
            key="f_preset",
            on_change=apply_preset,
            help="Fills every field below from cbal's presets (digits: quick CPU runs; "
            "paper-*: the protocol of Bengar et al.).",
        )
        st.selectbox(LABELS["dataset"], DATASETS, key="f_dataset")
        digits = ss["f_dataset"] == "digits"
        st.text_input(
            LABELS["data_dir"],
            key="f_data_dir",
            disabled=digits,
            placeholder="not needed for digits" if digits else "/path/to/data",
            help=DATA_HELP[ss["f_dataset"]],
        )
        st.number_input(
            LABELS["imbalance_factor"],
            step=0.05,
            format="%.3f",
            key="f_imbalance_factor",
            help="Smallest over largest class of the unlabeled pool; 1 = balanced.",
        )
        st.radio(
            LABELS["imbalance_profile"],
            PROFILES,
            horizontal=True,
            key="f_imbalance_profile",
            help="step: the first half of the classes keep n_max, the rest n_max·IF; "
            "exp: class c keeps n_max·IF^(c/(C−1)).",
        )
    with c2:
        st.number_input(LABELS["initial_labeled"], step=10, key="f_initial_labeled")
        st.number_input(LABELS["budget"], step=5, key="f_budget")
        st.number_input(
            LABELS["cycles"],
            step=1,
            key="f_cycles",
            help="Selection cycles, each labeling one budget of images; the model is trained "
            "once more on the final labeled set. Lists show cycles done / this number.",
        )
        st.text_input(LABELS["seed"], key="f_seeds", help="Comma-separated, e.g. 0, 1, 2.")
        st.selectbox(LABELS["model"], MODELS, key="f_model")
    with c3:
        st.number_input(LABELS["epochs"], step=1, key="f_epochs")
        st.text_input(LABELS["lr_milestones"], key="f_lr_milestones", help="lr × γ at these.")
        st.number_input(LABELS["lr"], step=0.01, format="%.4f", key="f_lr")
        st.number_input(LABELS["batch_size"], step=16, key="f_batch_size")
        st.radio(LABELS["device"], DEVICES, horizontal=True, key="f_device")
        st.caption(ui.device_text(ui.device_info(store)))
    st.multiselect(
        LABELS["strategy"],
        list(STRATEGIES),
        key="f_strategies",
        format_func=lambda s: STRATEGIES[s].label,
        help="Each CB variant sits beside its baseline: entropy / entropy-cb, bald / bald-cb, "
        "kcenter / kcenter-cb.",
    )


def lam_fields(strategies: list[str], num_classes: int) -> dict[str, float]:
    """A λ per chosen CB strategy; its default is the paper's for this class count."""
    cb = [s for s in strategies if STRATEGIES[s].uses_lam]
    lams: dict[str, float] = {}
    for col, s in zip(st.columns(max(len(cb), 1)), cb, strict=False):
        key = f"f_lam_{s}_{num_classes}"  # a new class count brings the paper's default back
        st.session_state.setdefault(key, STRATEGIES[s].default_lam(num_classes))
        lams[s] = float(
            col.number_input(
                f"λ for {STRATEGIES[s].label}",
                step=0.1,
                key=key,
                help=f"Paper default for {num_classes} classes: "
                f"{STRATEGIES[s].default_lam(num_classes):g}. λ = 0 drops the balancing term.",
            )
        )
    return lams


def validate(store: Store) -> tuple[list[str], SweepSpec | None]:
    """The form's problems (field named) and, when there are none, the sweep spec of the
    launch: the grid strategies × seeds, as :mod:`cbal.sweep` expands every grid."""
    ss = st.session_state
    errors: list[str] = []
    strategies = list(ss["f_strategies"])
    if not strategies:
        errors.append(f"**{LABELS['strategy']}**: choose at least one.")
    data_dir = None if ss["f_dataset"] == "digits" else ss["f_data_dir"].strip() or None
    try:
        seeds = parse_seeds(ss["f_seeds"])
        values = {name: ss[f"f_{name}"] for name in PRESET_FIELDS}
        base = config_mod.preset(
            ss["f_preset"], **values, data_dir=data_dir, device=ss["f_device"], seed=seeds[0]
        )
    except ConfigError as exc:
        lam_fields(strategies, KNOWN_CLASSES.get(ss["f_dataset"], 10))
        return [*errors, explain(exc)], None
    summary: dict[str, Any] = {}
    for seed in seeds:  # the pool depends on the seed
        summary = check_data(base.replace(seed=seed).to_json())
        if "error" in summary:
            errors.append(summary["error"])
            break
    classes = summary.get("classes") or KNOWN_CLASSES.get(base.dataset, 10)
    lams = lam_fields(strategies, classes)
    networks = []
    for s in strategies:
        try:
            cfg = base.replace(strategy=s, lam=lams.get(s))
            networks.append(f"{STRATEGIES[s].label}: {config_mod.describe_network(cfg)}")
        except ConfigError as exc:
            label = f"λ for {STRATEGIES[s].label}" if exc.field == "lam" else None
            errors.append(explain(exc, label))
    if networks:
        st.caption("Network trained · " + " · ".join(networks))
    device = ui.device_info(store)
    if base.device == "cuda" and device is not None and not device.get("cuda"):
        errors.append(explain(ConfigError("device", "cuda", "auto or cpu: torch sees no GPU")))
    if "error" not in summary:
        st.caption(
            f"{classes} classes · {summary['train']:,} train images, {summary['test']:,} test · "
            f"unlabeled pool of {summary['pool']:,} "
            f"(head {summary['head']:,}, tail {summary['tail']:,} per class)"
        )
    spec = SweepSpec(
        name="dashboard",
        preset=ss["f_preset"],
        base={**values, "data_dir": data_dir, "device": ss["f_device"]},
        grid={"strategy": strategies, "seed": seeds, **({"lam": lams} if lams else {})},
    )
    if not errors:
        try:
            expand(spec)  # what Launch builds: its errors show before any run folder exists
        except ConfigError as exc:
            errors.append(explain(exc))
    return errors, None if errors else spec


def launch(store: Store, spec: SweepSpec) -> str:
    """The form's grid as a sweep of its own (a new group), its runs started in the background."""
    sweep = expand(dataclasses.replace(spec, name=runner.new_group_name()))
    ids = runner.start_sweep(store, sweep)
    st.session_state["live_runs"] = ids
    # in the address too, so that a browser refresh (a new session) shows the same live view
    st.query_params["group"] = runner.group_of(store.run_info(ids[0])) or ids[0]
    slots = runner.max_concurrent()
    return f"Launched {len(ids)} run(s); they train in the background, {slots} at a time."


def launch_form(store: Store) -> None:
    init_form()
    form_fields(store)
    errors, plan = validate(store)
    for message in errors:
        st.error(message)
    if plan is None:
        st.button("Launch", type="primary", key="launch", disabled=True)
        return
    n = len(plan.grid["strategy"]) * len(plan.grid["seed"])
    # acted on in this run, not in a callback: a callback would launch the plan of the previous
    # run, before a value typed just before the click was checked
    if st.button(f"Launch {n} run(s)", type="primary", key="launch"):
        ui.safely(lambda: launch(store, plan))
        st.rerun()  # draw the live view above the form


def group_runs(store: Store, group: str | None) -> list[str]:
    """The runs of the comparison named in the page's address (after a browser refresh)."""
    if not group:
        return []
    with ui.guard("Reading the run store"):
        ids = [i.run_id for i in runner.groups(store).get(group, [])]
        st.session_state["live_runs"] = ids
        return ids
    return []


def launch_page() -> None:
    """Home: the live view of the comparison launched from this page, then the form. While a
    comparison is shown, the introduction gives way to it (and in presentation mode, the form)."""
    store = ui.page("Launch")
    live = st.session_state.get("live_runs") or group_runs(store, st.query_params.get("group"))
    if not live:
        st.title("Class-balanced active learning")
        st.caption(
            "Compare acquisition strategies on a long-tailed unlabeled pool (Bengar et al., "
            "WACV 2022). Runs train in background processes: closing this page does not stop "
            "them; the Runs page lists every run."
        )
        st.page_link(
            "pages/5_Explainer.py", label="New here? How it works", icon=":material/school:"
        )
    ui.show_flashes()
    if live:
        with ui.guard("Live view"):
            infos = ui.read_runs(store, live)
            st.subheader("Live view" + (f": {ui.group_summary(infos)}" if infos else ""))
            ui.live_view(store, live, "live")
    if live and ui.presenting():
        return
    with st.expander("Launch a comparison", expanded=not live), ui.guard("Launch form"):
        launch_form(store)


# The pages in pages/ join automatically (titles from their file names, as Streamlit's own
# pages/ convention would give); only the home page gets a better name than "app".
st.navigation(
    [
        st.Page(launch_page, title="Launch", default=True),
        *(
            st.Page(f"pages/{p.name}")
            for p in sorted((Path(__file__).parent / "pages").glob("*.py"))
        ),
    ]
).run()
