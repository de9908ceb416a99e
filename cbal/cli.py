"""``python -m cbal``: run, resume, list and show runs; sweep a grid of runs.

Bad input exits with status 2 and one line naming the flag; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cbal import config as config_mod
from cbal.config import PRESETS, ConfigError, RunConfig
from cbal.data import DataError
from cbal.loop import Cancelled, Prepared
from cbal.store import Store, StoreError, accuracy_text

# RunConfig fields the CLI does not offer as flags (set by presets or internally)
_HIDDEN = {"preset", "version"}
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_ALIASES = {"imbalance_factor": ["--if"], "imbalance_profile": ["--profile"]}


_THREADS_HELP = (
    "torch CPU threads (default: cores / CBAL_MAX_CONCURRENT, as for dashboard and sweep runs; "
    "another count changes the CPU numbers; recorded with the run)"
)


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# one line of help per RunConfig flag; the allowed values and the default are added to it
_FIELD_HELP = {
    "dataset": "data set",
    "data_dir": "local folder with the data set's files (all but digits)",
    "image_size": "image side in pixels for Tiny ImageNet and image folders",
    "test_per_class": "digits: balanced test images per class",
    "imbalance_factor": "smallest over largest class of the unlabeled pool, in (0, 1]",
    "imbalance_profile": "how the pool's class sizes fall from head to tail",
    "strategy": "acquisition strategy (described below)",
    "lam": "λ of the CB strategies, >= 0 (default: the paper's for the class count)",
    "solver": "CB selection: binary (the binary optimum, proved to --solver-mip-gap within its "
    "work limits and --solver-time-limit, else its gap), lp-round (exact LP, rounded: fast), "
    "highs, cvxpy, milp (references)",
    "solver_time_limit": "seconds for the binary search (after its LP), milp and coreset, > 0",
    "solver_mip_gap": "relative gap, (objective - bound) / max(|objective|, max u, lam), at "
    "which binary and milp count a selection as optimal, in [0, 1) (1e-4: Gurobi's default, "
    "which the paper ran; 0: the optimum itself)",
    "initial_labeled": "random balanced initial labeled set, >= 1",
    "budget": "images labeled per cycle, >= 1",
    "cycles": "acquisition cycles (the model is trained cycles + 1 times), >= 1",
    "model": "network, trained from scratch every cycle",
    "dropout": "dropout before the classifier, in [0, 1)",
    "epochs": "training epochs per cycle, >= 1",
    "batch_size": "training batch size, >= 1",
    "eval_batch_size": "inference batch size, >= 1",
    "lr": "SGD learning rate, > 0",
    "momentum": "SGD momentum, >= 0",
    "nesterov": "Nesterov momentum",
    "weight_decay": "SGD weight decay, >= 0",
    "lr_milestones": "epochs where the lr is multiplied by --lr-gamma, increasing",
    "lr_gamma": "lr factor at each milestone, > 0",
    "augment": "training augmentation",
    "mc_passes": "MC-dropout passes for BALD(-CB), >= 2 there",
    "seed": f"random seed, 0 … {config_mod.MAX_SEED}",
    "device": "auto uses a CUDA GPU when torch sees one",
    "save_pool_arrays": "keep each cycle's pool arrays for the λ explorer",
    "save_embeddings": "keep the pool's embeddings too (KCenterGreedy-CB in the explorer)",
}
_CHOICES = {
    "dataset": config_mod.DATASETS,
    "imbalance_profile": config_mod.PROFILES,
    "model": config_mod.MODELS,
    "augment": config_mod.AUGMENTS,
    "device": config_mod.DEVICES,
}


def _config_help(name: str, default: Any) -> tuple[str, str]:
    """(metavar, help line) of the flag for RunConfig field ``name``."""
    from cbal.strategies import STRATEGIES
    from cbal.strategies.balance import METHODS

    kind = str(_FIELDS[name].type).split(" |")[0]
    registry = {"strategy": list(STRATEGIES), "solver": list(METHODS)}
    choices = registry.get(name) or _CHOICES.get(name)
    if choices:
        metavar = "{" + ",".join(choices) + "}"
    elif kind.startswith("tuple"):
        metavar = "E1,E2"
    else:
        metavar = {"int": "N", "float": "X", "bool": "{true,false}"}.get(kind, "TEXT")
        metavar = "DIR" if name.endswith("_dir") else metavar
    if isinstance(default, tuple):
        shown = ",".join(map(str, default))
    else:
        shown = str(default).lower() if isinstance(default, bool | None) else str(default)
    preset = " (a preset may change it)" if any(name in p for p in PRESETS.values()) else ""
    text = _FIELD_HELP.get(name, name.replace("_", " "))
    if "default" not in text:
        text += f"; default {shown}{preset}"
    return metavar, text.replace("%", "%%")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(RunConfig):
        if f.name in _HIDDEN:
            continue
        metavar, text = _config_help(f.name, f.default)
        parser.add_argument(
            _flag(f.name),
            *_ALIASES.get(f.name, []),
            dest=f.name,
            default=None,
            metavar=metavar,
            help=text,
        )


def _strategies_epilog() -> str:
    from cbal.strategies import STRATEGIES

    width = max(map(len, STRATEGIES))
    lines = [f"  {s.name:<{width}}  {s.description}" for s in STRATEGIES.values()]
    return "strategies (--strategy):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The CLI; each sub-command's parser names the function that runs it (``func``)."""
    parser = _Parser(prog="cbal", description="Class-balanced active learning runs.")
    parser.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="run store root; default $CBAL_CACHE, else ./cache",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="command"
    )
    _add_run_parser(sub)
    resume = sub.add_parser("resume", help="continue a run from its last finished cycle")
    resume.add_argument("run_id", help="a run id from `cbal list`")
    resume.set_defaults(func=lambda store, args: cmd_resume(store, args.run_id))
    sub.add_parser("list", help="table of runs").set_defaults(
        func=lambda store, args: cmd_list(store)
    )
    show = sub.add_parser("show", help="the cycle table of one run")
    show.add_argument("run_id", help="a run id from `cbal list`")
    show.set_defaults(func=lambda store, args: cmd_show(store, args.run_id))
    _add_sweep_parser(sub)
    _add_reproduce_parser(sub)
    _add_export_parser(sub)
    worker = sub.add_parser("worker")  # internal (cbal.runner); no help: left out of --help
    worker.add_argument("run_id")
    worker.set_defaults(func=lambda store, args: _worker(store, args.run_id))
    return parser


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="start a run in the foreground",
        description="Run active learning in the foreground (Ctrl-C cancels; resume continues).",
        epilog=_strategies_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="fill every field from a preset, then apply the other flags; default none",
    )
    _add_config_flags(run)
    run.add_argument("--threads", type=int, default=None, metavar="N", help=_THREADS_HELP)
    run.set_defaults(func=cmd_run)


def _add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="a grid of runs: joblib locally, or a Dask cluster")
    sweep.add_argument("spec", nargs="?", help="YAML or JSON sweep spec (format: cbal.sweep)")
    sweep.add_argument("--name", default=None, help="sweep name (part of its id); default: sweep")
    sweep.add_argument(
        "--preset", choices=list(PRESETS), default=None, help="base of every run; default none"
    )
    sweep.add_argument("--strategies", metavar="S1,S2", help="grid of strategies")
    sweep.add_argument("--seeds", metavar="N1,N2", help="grid of seeds")
    sweep.add_argument("--ifs", metavar="X1,X2", help="grid of imbalance factors")
    sweep.add_argument("--lams", metavar="S=X,...", help="λ per strategy (repeat S for several)")
    _add_grid_flags(sweep)
    sweep.set_defaults(func=cmd_sweep)


def _add_reproduce_parser(sub: Any) -> None:
    repro = sub.add_parser("reproduce", help="the paper's comparison grid and a claims report")
    repro.add_argument("--preset", choices=list(PRESETS), required=True, help="required")
    repro.add_argument("--strategies", metavar="S1,S2", help="default: the paper's nine")
    repro.add_argument("--seeds", metavar="N1,N2", default="0,1,2", help="default 0,1,2")
    repro.add_argument("--ifs", metavar="X1,X2", default="1,0.3,0.1", help="default 1,0.3,0.1")
    repro.add_argument("--lams", metavar="S=X,...", help="λ per strategy (default the paper's)")
    repro.add_argument(
        "--out", default=None, help="report folder; default <store>/reports/<sweep id>"
    )
    _add_grid_flags(repro)
    repro.set_defaults(func=cmd_reproduce)


def _add_export_parser(sub: Any) -> None:
    exp = sub.add_parser("export", help="the paper's figures (PDF/SVG/PNG/CSV), an HTML report")
    chosen = exp.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--runs", metavar="ID1,ID2", help="the runs to export")
    chosen.add_argument("--all", action="store_true", help="every run in the store")
    exp.add_argument(
        "--figures",
        metavar="a,b,c,d",
        help="a: accuracy per IF, b: selected classes per cycle, c: L1 per cycle, "
        "d: λ trade-off (default: all)",
    )
    exp.add_argument(
        "--format",
        dest="formats",
        metavar="F1,F2",
        default="pdf,svg,png,csv",
        help="any of pdf, svg, png, csv; default all four",
    )
    exp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    exp.add_argument("--lambda-run", metavar="RUN_ID", help="figure d's run (default: a CB run)")
    exp.add_argument("--lambda-cycle", type=int, metavar="K", help="figure d's cycle")
    exp.add_argument(
        "--width",
        choices=["single", "double"],
        default="double",
        help="print width: one column (3.5 in) or the text width (7 in); type ≥ 7 pt",
    )
    exp.set_defaults(func=cmd_export)


def _add_grid_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``sweep`` and ``reproduce``: fixed fields and how the runs execute."""
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="F=V",
        help="a fixed field for every run (repeatable)",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs at a time, -1 for one per core; default 1",
    )
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=_THREADS_HELP)
    parser.add_argument(
        "--gpu-jobs", type=int, default=1, metavar="N", help="runs per GPU at a time; default 1"
    )
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="a Dask cluster (sharing the store path); default: local processes",
    )
    parser.add_argument("--skip-failed", action="store_true", help="do not retry failed runs")
    parser.add_argument(
        "--max-runs", type=int, default=None, metavar="N", help="refuse larger grids (10000)"
    )
    parser.add_argument("--dry-run", action="store_true", help="show the runs, create nothing")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in _HIDDEN and getattr(args, f.name, None) is not None
    }
    if args.preset:
        return config_mod.preset(args.preset, **values)
    return config_mod.make_config(**values)


def _progress_bar(cycles: int, done: int) -> Any:
    """A bar over the run's cycles (whole ones, counted when recorded); the phase, the epoch and
    the loop's ETA as text."""
    from tqdm import tqdm

    bar = tqdm(
        total=cycles + 1,
        initial=done,
        unit="cycle",
        bar_format="{desc} {bar} {n}/{total} cycles [{elapsed}]",
    )

    def update(event: dict[str, Any]) -> None:
        bar.n = event["cycle"]  # the cycles before this one are on disk
        step = f" epoch {event['step']}/{event['steps']}" if "steps" in event else ""
        eta = "–" if event.get("eta_s") is None else tqdm.format_interval(event["eta_s"])
        bar.set_description(f"cycle {event['cycle']}/{cycles} {event['phase']}{step} · ETA {eta}")

    return bar, update


def _resume_hint(store: Store, run_id: str) -> str:
    where = "" if store.root == Store().root else f" --cache-dir {store.root}"
    return f"python -m cbal{where} resume {run_id}"


def _execute(
    store: Store,
    run_id: str,
    quiet: bool = False,
    threads: int | None = None,
    prepared: Prepared | None = None,
) -> int:
    from cbal.loop import execute, failure_recorded

    cfg = store.load_config(run_id)
    done = len(store.read_cycles(run_id))
    bar, update = (None, None) if quiet else _progress_bar(cfg.cycles, done)
    try:
        records = execute(store, run_id, update, threads, prepared)
        if bar is not None:
            bar.n = cfg.cycles + 1
            bar.set_description("done")
    except Cancelled:
        if bar is not None:
            bar.close()
        kept = len(store.read_cycles(run_id))
        print(
            f"run {run_id} cancelled after {kept} of {cfg.cycles + 1} cycles (kept); "
            f"resume with: {_resume_hint(store, run_id)}",
            file=sys.stderr,
        )
        return 130
    except StoreError:  # e.g. the run is locked by another process: bad input, not a crash
        raise
    except Exception as exc:  # the loop stored the error and traceback in status.json
        where = (
            "status.json has the traceback"
            if failure_recorded(store, run_id, exc)
            else "it could not be recorded in status.json"
        )
        print(
            f"cbal: run {run_id} failed: {exc} ({where}; finished cycles are kept; "
            f"resume with: {_resume_hint(store, run_id)})",
            file=sys.stderr,
        )
        return 1
    finally:
        if bar is not None:
            bar.close()
    last = records[-1]
    acc = accuracy_text(last["accuracy"])
    print(f"run {run_id} done: accuracy {acc} with {last['labeled']} labels")
    return 0


def cmd_resume(store: Store, run_id: str) -> int:
    """Continue ``run_id``; a finished run is only reported."""
    info = store.run_info(run_id)
    if info.state == "done" and len(info.cycles) == info.config.cycles + 1:
        last = info.cycles[-1]
        print(
            f"run {run_id} is already done: accuracy {accuracy_text(last['accuracy'])} with "
            f"{last['labeled']} labels (nothing to resume)"
        )
        return 0
    store.clear_cancel(run_id)  # resuming is asking it to run
    return _execute(store, run_id)


def _worker(store: Store, run_id: str) -> int:
    """A background run (see cbal.runner): hold the run, wait for a free slot, then execute.

    Whatever stops it before the loop starts is recorded in status.json, never a silent exit."""
    import traceback

    from cbal import runner
    from cbal.loop import record_failure

    try:
        with store.lock(run_id), runner.slot(store):
            return _execute(store, run_id, quiet=True)
    except Cancelled:  # cancelled while still queued
        store.write_status(run_id, state="cancelled", pid=None)
        store.clear_cancel(run_id)
        return 130
    except StoreError:
        raise
    except Exception as exc:
        record_failure(store, run_id, exc, traceback.format_exc(limit=20))
        print(f"cbal: run {run_id} failed before it started: {exc}", file=sys.stderr)
        return 1


def _raise_cancelled(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
    raise Cancelled(f"signal {signum}")


def cmd_run(store: Store, args: argparse.Namespace) -> int:
    from cbal.loop import prepare
    from cbal.train import resolve_device

    cfg = config_from_args(args)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: {args.threads} is not allowed: expected an integer >= 1")
    resolve_device(cfg.device)
    prep = prepare(cfg)  # data problems surface before a run folder exists
    run_id = store.create_run(cfg)
    print(f"run id: {run_id}", flush=True)
    return _execute(store, run_id, threads=args.threads, prepared=prep)


def cmd_list(store: Store) -> int:
    rows = [["run id", "state", "dataset", "IF", "strategy", "λ", "seed", "cycles", "accuracy"]]
    infos, damaged = store.scan_runs()
    for info in infos:
        c = info.config
        rows.append(
            [
                info.run_id,
                info.state,
                c.dataset,
                f"{c.imbalance_factor:g}",
                c.strategy,
                config_mod.lam_text(c, info.cycles),
                str(c.seed),
                info.cycles_text,
                accuracy_text(info.last_accuracy),
            ]
        )
    if len(rows) == 1 and not damaged:
        print(f"no runs in {store.runs_dir}")
        return 0
    if len(rows) > 1:
        _print_table(rows)
    for damage in damaged:
        print(f"{damage.run_id}  {damage}")
    return 0


def cmd_show(store: Store, run_id: str) -> int:
    from cbal.loop import describe_exhaustion

    info = store.run_info(run_id)
    threads = info.status.get("threads")
    print(
        f"{run_id}: {info.state}  {info.config.dataset} IF={info.config.imbalance_factor:g} "
        f"{info.config.strategy} seed={info.config.seed}  cycles {info.cycles_text}"
        + (f"  torch threads {threads}" if threads else "")
    )
    if info.status.get("error"):
        print(f"error: {info.status['error']}")
    rows = [
        ["cycle", "labeled", "accuracy", "batch L1", "labeled L1", "solver", "train s", "select s"]
    ]
    for r in info.cycles:
        sel = r.get("selection") or {}
        rows.append(
            [
                str(r["cycle"]),
                str(r["labeled"]),
                accuracy_text(r["accuracy"]),
                "-" if r["batch_l1"] is None else f"{r['batch_l1']:.3f}",
                f"{r['labeled_l1']:.3f}",
                str(sel.get("status", "-")),
                f"{r['timings'].get('train', 0):.2f}",
                f"{r['timings'].get('select', 0):.3f}" if "select" in r["timings"] else "-",
            ]
        )
    _print_table(rows)
    c = info.config
    print(f"network: {config_mod.describe_network(c)}")
    print(f"initial set: {c.initial_sampling} · compat: {c.compat}")
    for r in info.cycles:
        for line in describe_exhaustion(r):
            print(f"cycle {r['cycle']}: pool exhausted for {line}")
    return 0


_SWEEP_FLAGS = {
    "strategy": "--strategies",
    "seed": "--seeds",
    "imbalance_factor": "--ifs",
    "lam": "--lams",
}


def _sweep_flag(args: argparse.Namespace, field: str) -> str:
    """The flag (or spec file) a sweep's ConfigError on ``field`` came from."""
    flag = _SWEEP_FLAGS.get(field)
    if flag and getattr(args, flag[2:]) is not None:
        return flag
    if field in ("name", "preset", "scheduler", "n_jobs", "gpu_jobs", "threads", "max_runs"):
        return _flag(field)
    spec = getattr(args, "spec", None)
    if spec and not any(s.partition("=")[0].strip() == field for s in args.sets):
        return str(spec)
    return "--set"


def _sweep_header(sweep: Any, rows: list[Any]) -> str:
    actions = [r.action for r in rows]
    busy = f", {actions.count('busy')} busy elsewhere" if "busy" in actions else ""
    return (
        f"sweep {sweep.sweep_id} ({sweep.name}): {len(rows)} runs: "
        f"{actions.count('create') + actions.count('run')} to start, "
        f"{actions.count('resume')} to resume, {actions.count('skip')} skipped{busy}"
    )


def cmd_sweep(store: Store, args: argparse.Namespace) -> int:
    from cbal import sweep as sw

    try:
        base = sw.load_spec(args.spec) if args.spec else None
    except ConfigError as exc:
        raise UsageError(f"{args.spec}: {exc}") from None
    code, _ = _run_grid(store, args, base, args.name, args.preset)
    return code


def cmd_reproduce(store: Store, args: argparse.Namespace) -> int:
    from pathlib import Path

    from cbal import reproduce
    from cbal.sweep import sweep_runs

    spec = reproduce.reproduce_spec(args.preset)
    code, sweep = _run_grid(store, args, spec, spec.name, None)
    if sweep is None or args.dry_run:
        return code
    runs = sweep_runs(store, sweep.sweep_id)
    out = Path(args.out) if args.out else store.root / "reports" / sweep.sweep_id
    path = reproduce.write_report(runs, out, f"cbal reproduce --preset {args.preset}")
    _print_table(
        [["verdict", "claim", "scope"]]
        + [[c.verdict, c.claim, c.scope] for c in reproduce.check_claims(runs)]
    )
    print(f"report: {path}")
    return code


def _run_grid(
    store: Store, args: argparse.Namespace, base: Any, name: str | None, preset: str | None
) -> tuple[int, Any]:
    """Expand ``base`` with the grid flags and run it as a sweep; (exit code, the sweep)."""
    from tqdm import tqdm

    from cbal import sweep as sw

    bars: list[Any] = []

    def on_start(rows: list[sw.RunRow]) -> None:
        print(_sweep_header(sweep, rows), flush=True)
        done = sum(r.state == "done" for r in rows)
        todo = sum(r.action in ("run", "resume") for r in rows)
        bars.append(tqdm(total=done + todo, initial=done, unit="run", desc=sweep.sweep_id))

    def on_result(row: sw.RunRow) -> None:
        acc = accuracy_text(row.accuracy)
        error = f"  {row.error}" if row.error else ""
        seconds = f"{row.seconds or 0:.0f} s"
        bars[0].write(f"{row.state:<9} {row.key}  {row.run_id}  acc {acc}  {seconds}{error}")
        bars[0].update(1)

    try:
        flags = {k: getattr(args, k) for k in ("strategies", "seeds", "ifs")}
        spec = sw.spec_from_flags(
            base, name=name, preset=preset, lams=args.lams, sets=args.sets, **flags
        )
        sweep = sw.expand(spec, args.max_runs or sw.MAX_RUNS)
        if args.dry_run:
            if not args.scheduler:
                sw.check_configs(sweep.configs)
            rows = sw.plan(store, sweep, retry_failed=not args.skip_failed)
            print(_sweep_header(sweep, rows))
            _print_table(sw.table(rows))
            return 0, sweep
        try:
            summary = sw.run_sweep(
                store,
                sweep,
                n_jobs=args.n_jobs,
                scheduler=args.scheduler,
                threads=args.threads,
                gpu_jobs=args.gpu_jobs,
                retry_failed=not args.skip_failed,
                on_start=on_start,
                on_result=on_result,
            )
        finally:
            for bar in bars:
                bar.close()
    except ConfigError as exc:
        raise UsageError(f"{_sweep_flag(args, exc.field)}: {exc}") from None
    except Cancelled:
        print("sweep cancelled; finished cycles are kept (run the same sweep again to resume)")
        return 130, None
    _print_table(sw.table(summary.rows))
    for r in summary.rows:
        if r.state != "done" and r.error:
            print(f"{r.key}: {r.error}")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts().items()))
    print(f"sweep {sweep.sweep_id}: {counts} ({summary.created} created, {summary.executed} ran)")
    return (0 if summary.ok else 1), sweep


def _items(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed] or ([] if items else [repr(text)])
    if bad:
        raise UsageError(f"{flag}: {', '.join(bad)} not among {', '.join(allowed)}")
    return items


def cmd_export(store: Store, args: argparse.Namespace) -> int:
    from cbal import export

    figures = _items(args.figures or ",".join(export.FIGURES), list(export.FIGURES), "--figures")
    formats = _items(args.formats, export.FORMATS, "--format")
    if args.all:
        run_ids = [i.run_id for i in store.list_runs()]
    else:
        run_ids = [r.strip() for r in args.runs.split(",") if r.strip()]
    if not run_ids:
        raise UsageError(f"--all: no runs in {store.runs_dir}" if args.all else "--runs: no run id")
    if args.lambda_run is not None:
        store.load_config(args.lambda_run)  # unknown: a StoreError, one line
    try:
        result = export.export_runs(
            store,
            run_ids,
            args.out,
            figures,
            formats,
            args.lambda_run,
            args.lambda_cycle,
            width=args.width,
        )
    except export.ExportError as exc:
        raise UsageError(f"--out: {exc}") from None
    print(f"wrote {len(result.written)} files to {result.out}; report: {export.REPORT}")
    for note in result.notes:
        print(f"note: {note}")
    for error in result.errors:
        print(f"cbal: error: {error}", file=sys.stderr)
    missing = args.figures is not None and bool(result.notes)  # a figure asked for by name
    return 1 if result.errors or missing else 0


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.cache_dir is not None and not args.cache_dir.strip():
            raise UsageError("--cache-dir: an empty path; give a folder (default $CBAL_CACHE)")
        store = Store(args.cache_dir)
        signal.signal(signal.SIGTERM, _raise_cancelled)
        signal.signal(signal.SIGINT, _raise_cancelled)  # Ctrl-C cancels, as the dashboard does
        result: int = args.func(store, args)
        return result
    except UsageError as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        return _fail(f"{_flag(exc.field)}: {exc}")
    except DataError as exc:
        return _fail(f"--data-dir: {exc}")
    except (StoreError, ValueError) as exc:
        return _fail(str(exc))
    except Cancelled:  # outside a run's loop, e.g. while the data loads
        print("cbal: cancelled", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"cbal: error: {' '.join(message.split())}", file=sys.stderr)
    return 2
