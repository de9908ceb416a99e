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
from cbal.store import Store, StoreError

# RunConfig fields the CLI does not offer as flags (set by presets or internally)
_HIDDEN = {"preset", "version"}
_ALIASES = {"imbalance_factor": ["--if"], "imbalance_profile": ["--profile"]}


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(RunConfig):
        if f.name in _HIDDEN:
            continue
        kind = str(f.type).split(" |")[0]
        metavar = {"int": "N", "float": "X", "bool": "true|false"}.get(kind, "VALUE")
        if kind.startswith("tuple"):
            metavar = "E1,E2"
        parser.add_argument(
            _flag(f.name),
            *_ALIASES.get(f.name, []),
            dest=f.name,
            default=None,
            metavar=metavar,
            help=f"(default {f.default!r})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cbal", description="Class-balanced active learning runs.")
    parser.add_argument(
        "--cache-dir", default=None, help="run store root (default $CBAL_CACHE or ./cache)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="start a run in the foreground")
    run.add_argument("--preset", choices=list(PRESETS), default=None)
    _add_config_flags(run)
    resume = sub.add_parser("resume", help="continue a run from its last finished cycle")
    resume.add_argument("run_id")
    sub.add_parser("list", help="table of runs")
    show = sub.add_parser("show", help="the cycle table of one run")
    show.add_argument("run_id")
    sweep = sub.add_parser("sweep", help="a grid of runs: joblib locally, or a Dask cluster")
    sweep.add_argument("spec", nargs="?", help="YAML or JSON sweep spec (format: cbal.sweep)")
    sweep.add_argument("--name", default=None, help="sweep name (part of its id)")
    sweep.add_argument("--preset", choices=list(PRESETS), default=None)
    sweep.add_argument("--strategies", metavar="S1,S2", help="grid of strategies")
    sweep.add_argument("--seeds", metavar="N1,N2", help="grid of seeds")
    sweep.add_argument("--ifs", metavar="X1,X2", help="grid of imbalance factors")
    sweep.add_argument("--lams", metavar="S=X,...", help="λ per strategy (repeat S for several)")
    _add_grid_flags(sweep)
    repro = sub.add_parser("reproduce", help="the paper's comparison grid and a claims report")
    repro.add_argument("--preset", choices=list(PRESETS), required=True)
    repro.add_argument("--strategies", metavar="S1,S2", help="default: the paper's nine")
    repro.add_argument("--seeds", metavar="N1,N2", default="0,1,2")
    repro.add_argument("--ifs", metavar="X1,X2", default="1,0.3,0.1")
    repro.add_argument("--lams", metavar="S=X,...", help="λ per strategy (default the paper's)")
    repro.add_argument("--out", default=None, help="report folder (default <store>/reports/ID)")
    _add_grid_flags(repro)
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
    exp.add_argument("--format", dest="formats", metavar="F1,F2", default="pdf,svg,png,csv")
    exp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    exp.add_argument("--lambda-run", metavar="RUN_ID", help="figure d's run (default: a CB run)")
    exp.add_argument("--lambda-cycle", type=int, metavar="K", help="figure d's cycle")
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("run_id")
    return parser


def _add_grid_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``sweep`` and ``reproduce``: fixed fields and how the runs execute."""
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="F=V", help="fixed field"
    )
    parser.add_argument(
        "--n-jobs", type=int, default=1, metavar="N", help="runs at a time (-1: cores)"
    )
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch threads/run")
    parser.add_argument(
        "--gpu-jobs", type=int, default=1, metavar="N", help="runs per GPU at a time"
    )
    parser.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="a Dask cluster (sharing the store path)"
    )
    parser.add_argument("--skip-failed", action="store_true", help="do not retry failed runs")
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


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="cycle",
        bar_format="{l_bar}{bar}| {n:.2f}/{total} [{elapsed}<{remaining}]",
    )

    def update(event: dict[str, Any]) -> None:
        bar.n = round(event["fraction"] * total, 2)
        step = f" {event['step']}/{event['steps']}" if "steps" in event else ""
        bar.set_description(f"cycle {event['cycle']} {event['phase']}{step}")

    return bar, update


def _execute(store: Store, run_id: str, quiet: bool = False) -> int:
    from cbal.loop import Cancelled, execute

    cfg = store.load_config(run_id)
    bar, update = (None, None) if quiet else _progress_bar(cfg.cycles + 1)
    try:
        records = execute(store, run_id, update)
    except Cancelled:
        print(f"run {run_id} cancelled; finished cycles are kept (resume with `cbal resume`)")
        return 130
    except StoreError:  # e.g. the run is locked by another process: bad input, not a crash
        raise
    except Exception as exc:  # the loop stored the error and traceback in status.json
        print(
            f"cbal: run {run_id} failed: {exc} (status.json has the traceback; "
            f"finished cycles are kept)",
            file=sys.stderr,
        )
        return 1
    finally:
        if bar is not None:
            bar.close()
    last = records[-1]
    print(f"run {run_id} done: accuracy {last['accuracy']:.4f} with {last['labeled']} labels")
    return 0


def _worker(store: Store, run_id: str) -> int:
    """A background run (see cbal.runner): wait for a free slot, then execute."""
    import torch

    from cbal import runner
    from cbal.loop import Cancelled

    torch.set_num_threads(runner.threads_per_run())
    try:
        with runner.slot(store):
            return _execute(store, run_id, quiet=True)
    except Cancelled:  # cancelled while still queued
        store.write_status(run_id, state="cancelled", pid=None)
        return 130


def _raise_cancelled(signum: int, frame: Any) -> None:
    from cbal.loop import Cancelled

    raise Cancelled(f"signal {signum}")


def cmd_run(store: Store, args: argparse.Namespace) -> int:
    from cbal.loop import prepare
    from cbal.train import resolve_device

    cfg = config_from_args(args)
    resolve_device(cfg.device)
    prepare(cfg)  # data problems surface before a run folder exists
    run_id = store.create_run(cfg)
    print(f"run id: {run_id}", flush=True)
    return _execute(store, run_id)


def cmd_list(store: Store) -> int:
    rows = [["run id", "state", "dataset", "IF", "strategy", "λ", "seed", "cycles", "accuracy"]]
    for info in store.list_runs():
        c = info.config
        lam = info.cycles[0]["lam"] if info.cycles else c.lam
        rows.append(
            [
                info.run_id,
                info.state,
                c.dataset,
                f"{c.imbalance_factor:g}",
                c.strategy,
                "-" if lam is None else f"{lam:g}",
                str(c.seed),
                f"{len(info.cycles)}/{c.cycles + 1}",
                "-" if info.last_accuracy is None else f"{info.last_accuracy:.4f}",
            ]
        )
    if len(rows) == 1:
        print(f"no runs in {store.runs_dir}")
        return 0
    _print_table(rows)
    return 0


def cmd_show(store: Store, run_id: str) -> int:
    from cbal.loop import describe_exhaustion

    info = store.run_info(run_id)
    print(
        f"{run_id}: {info.state}  {info.config.dataset} IF={info.config.imbalance_factor:g} "
        f"{info.config.strategy} seed={info.config.seed}"
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
                f"{r['accuracy']:.4f}",
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
    if field in ("name", "preset", "scheduler", "n_jobs", "gpu_jobs", "threads"):
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
    from cbal.loop import Cancelled

    bars: list[Any] = []

    def on_start(rows: list[sw.RunRow]) -> None:
        print(_sweep_header(sweep, rows), flush=True)
        done = sum(r.state == "done" for r in rows)
        todo = sum(r.action in ("run", "resume") for r in rows)
        bars.append(tqdm(total=done + todo, initial=done, unit="run", desc=sweep.sweep_id))

    def on_result(row: sw.RunRow) -> None:
        acc = "-" if row.accuracy is None else f"{row.accuracy:.4f}"
        error = f"  {row.error}" if row.error else ""
        seconds = f"{row.seconds or 0:.0f} s"
        bars[0].write(f"{row.state:<9} {row.key}  {row.run_id}  acc {acc}  {seconds}{error}")
        bars[0].update(1)

    try:
        flags = {k: getattr(args, k) for k in ("strategies", "seeds", "ifs")}
        spec = sw.spec_from_flags(
            base, name=name, preset=preset, lams=args.lams, sets=args.sets, **flags
        )
        sweep = sw.expand(spec)
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
            store, run_ids, args.out, figures, formats, args.lambda_run, args.lambda_cycle
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
        store = Store(args.cache_dir)
        signal.signal(signal.SIGTERM, _raise_cancelled)
        if args.command == "run":
            return cmd_run(store, args)
        if args.command == "resume":
            store.load_config(args.run_id)
            return _execute(store, args.run_id)
        if args.command == "worker":
            return _worker(store, args.run_id)
        if args.command == "list":
            return cmd_list(store)
        if args.command == "sweep":
            return cmd_sweep(store, args)
        if args.command == "reproduce":
            return cmd_reproduce(store, args)
        if args.command == "export":
            return cmd_export(store, args)
        return cmd_show(store, args.run_id)
    except UsageError as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        return _fail(f"{_flag(exc.field)}: {exc}")
    except DataError as exc:
        return _fail(f"--data-dir: {exc}")
    except (StoreError, ValueError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; finished cycles are kept", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"cbal: error: {' '.join(message.split())}", file=sys.stderr)
    return 2
