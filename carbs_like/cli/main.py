"""The ``carbs-like`` command: demo, tune, status, export, serve, report, propose, verify, repair.

The parser and the commands; imported by nothing (the entry point calls :func:`main`). The
experiment folder, the trainable and the tuner's files are :mod:`carbs_like.cli.experiment`;
running trials is :mod:`carbs_like.cli.run` (local processes) and
:mod:`carbs_like.cli.ray_backend` (Ray Tune); proposals and their checks are
:mod:`carbs_like.cli.verify`; what ``status`` prints is :mod:`carbs_like.cli.status`.

Running ``tune`` (or ``demo``) again on the same folder resumes: finished trials are kept, trials
that were running when it stopped are run again, and the search continues up to ``--trials`` /
``--budget``. Errors are one line (``carbs-like: error: ...``); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..journal import JOURNAL_FILE
from ..report import write_report
from ..space import SearchSpace
from ..tuner import Tuner
from .experiment import (
    DEMO_TRAINABLE,
    EXPERIMENT_FILE,
    JOURNAL_FOLDER,
    Experiment,
    UsageError,
    check_configs,
    enqueue_configs,
    limits_reached,
    load_space,
    load_trainable,
    open_tuner,
    read_enqueue_file,
    save_snapshot,
    totals,
)
from .export import write_export
from .run import Progress, clock, run_local
from .status import proposal_text, status_text
from .verify import (
    N_BOOTSTRAP,
    demo_target,
    fit_law,
    format_prediction,
    held_out_space,
    held_out_target,
    predict,
    read_verify,
    run_verify,
)

__all__ = ["build_parser", "main"]

_REPO = Path(__file__).resolve().parents[2]
# The demo refits the GPs less often and scores fewer candidates: asks take ~0.5 s instead of
# several seconds on 2 busy cores, which buys more trials in the 10 minutes.
DEMO_SETTINGS = {"n_candidates": 500, "fit_maxiter": 40, "refit_always_below": 12, "refit_growth": 1.25}


# ------------------------------------------------------------------------ commands ------------
def cmd_tune(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    space = load_space(args.space_file)
    load_trainable(args.trainable)  # fail fast, in this process, with a one-line error
    enqueue = check_configs(space, read_enqueue_file(args.enqueue), args.enqueue) if args.enqueue else None
    settings = {"target": parse_target(space, args.target)} if args.target else None
    experiment = Experiment(
        space=space.to_dict(), trainable=args.trainable, metric=args.metric, cost=args.cost_key,
        trials=args.trials, budget=args.budget, concurrency=args.concurrency,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial, seed=args.seed,
        settings=settings,
    )
    run_experiment(folder, experiment, backend=args.backend,
                   enqueue=(enqueue, args.enqueue) if enqueue is not None else None)
    return 0


def parse_target(space: SearchSpace, text: str) -> dict[str, float]:
    """``n_params=7e9,tokens=1.4e11`` -> ``{"n_params": 7e9, "tokens": 1.4e11}``, checked against the
    space's scaling axes."""
    target: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            target[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--target {text!r}: expected NAME=VALUE pairs separated by commas, e.g. "
                             f"{','.join(f'{a}=1e9' for a in space.scaling)}")
    try:
        space.scaling_coordinates(target)
    except ValueError as e:
        raise UsageError(f"--target: {e}") from None
    return target


def run_experiment(folder: Path, experiment: Experiment, *, backend: str, out: Any = None,
                   enqueue: tuple[list[dict[str, Any]], str] | None = None) -> Tuner:
    """Start or resume the search in ``folder``; returns the tuner when the limits are reached.

    ``enqueue``: (configs, the file they came from), run first unless already run or queued."""
    out = out or sys.stdout
    recorded = _reconcile(folder, experiment, out=out)
    folder.mkdir(parents=True, exist_ok=True)
    recorded.save(folder)
    tuner = open_tuner(folder, experiment, for_search=True)
    if enqueue is not None:
        try:
            n = enqueue_configs(tuner, *enqueue)
        except BaseException:
            _close(tuner)
            raise
        print(f"carbs-like: enqueued {n} config(s) from {enqueue[1]}"
              + (f" ({len(enqueue[0]) - n} already run or queued)" if n < len(enqueue[0]) else ""), file=out)
    n_done, _ = totals(tuner)
    backend = _choose_backend(backend, out=out)
    limit = f"{experiment.trials} trials" + (f" or cost {experiment.budget:g}" if experiment.budget else "")
    verb = f"resuming at trial {n_done}" if n_done else "starting"
    print(f"carbs-like: {verb} in {folder} ({backend} backend, {experiment.concurrency} at a time, "
          f"up to {limit}); interrupt any time and rerun to resume", file=out, flush=True)
    reached = limits_reached(experiment, *totals(tuner))
    if reached:
        print(f"carbs-like: the experiment already reached {reached}; raise --trials or --budget to go on", file=out)
        return tuner
    df = tuner.observations()
    previous = [(int(t), float(c), None if s != "ok" else float(l))
                for t, c, l, s in zip(df["trial_id"], df["cost"], df["loss"], df["status"])]
    progress = Progress(tuner.space, out=out, previous=previous, total=experiment.trials)
    try:
        if backend == "ray":
            from .ray_backend import run as run_ray  # Ray is imported only when used

            run_ray(tuner, experiment, folder, progress)
        else:
            run_local(tuner, experiment, folder, progress)
    finally:
        save_snapshot(tuner, folder)
        _close(tuner)
    df = tuner.observations()
    print(f"carbs-like: done: {len(df)} trials ({int((df['status'] == 'ok').sum())} ok), "
          f"{len(tuner.pareto_front())} on the front, total cost {df['cost'].sum():.4g}",
          file=out, flush=True)
    return tuner


def _close(tuner: Tuner) -> None:
    tuner.close()


def _reconcile(folder: Path, experiment: Experiment, *, out: Any) -> Experiment:
    """On resume the space and trainable must match; the limits may change.

    Returns:
        the experiment to record in ``folder``: a raised limit is recorded, a lowered one only
        applies to this call (``status`` keeps showing the limit the run was started with).
    """
    if not (folder / EXPERIMENT_FILE).exists():
        return experiment
    old = Experiment.load(folder)
    if old.space != experiment.space:
        raise UsageError(f"{folder} holds an experiment with another search space; use a new --path")
    if old.trainable != experiment.trainable:
        raise UsageError(f"{folder} tunes {old.trainable}, not {experiment.trainable}; use a new --path")
    if old.cost != experiment.cost:
        raise UsageError(f"{folder} measures cost as {old.cost!r}, not {experiment.cost!r}; use a new --path")
    budget = None if old.budget is None or experiment.budget is None else max(old.budget, experiment.budget)
    return dataclasses.replace(experiment, trials=max(old.trials, experiment.trials), budget=budget)


def _choose_backend(backend: str, *, out: Any) -> str:
    if backend != "auto":
        if backend == "ray" and not _ray_ready():
            raise UsageError("--backend ray needs Ray Tune: pip install 'carbs-like[ray]'")
        return backend
    if _ray_ready():
        return "ray"
    print("carbs-like: Ray Tune is not installed; running trials in local processes",
          file=out)
    return "local"


def _ray_ready() -> bool:
    return importlib.util.find_spec("ray") is not None


def cmd_status(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    journals = [j for j in (folder, folder / JOURNAL_FOLDER) if (j / JOURNAL_FILE).is_file()]
    if not (folder / EXPERIMENT_FILE).exists() and journals:
        # A journal without a carbs-like experiment: a Ray Tune search (CarbsSearcher(path=...)).
        try:
            print(status_text(Tuner.read(journals[0]), None, journals[0], all_trials=args.all))
        except ValueError as e:  # a JournalError names the line
            raise UsageError(f"{e}. Run `carbs-like repair {journals[0]}` to keep the events before it") from None
        return 0
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    print(status_text(tuner, experiment, folder, all_trials=args.all))
    if args.proposal and tuner.space.scaling:
        print("\n" + proposal_text(tuner, experiment, n_bootstrap=args.bootstrap))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    tuner = open_tuner(folder, Experiment.load(folder))
    text = write_export(tuner, as_json=args.json, output=Path(args.output) if args.output else None)
    if text is None:
        print(f"carbs-like: wrote {len(tuner.trials)} trials to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(Path(args.path), host=args.host, port=args.port)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    demo = (experiment.trainable, experiment.cost) == (DEMO_TRAINABLE, "flops")
    label = DEMO_COST_LABEL if demo else f"cost ({experiment.cost})"
    verify = read_verify(folder)
    html = write_report(tuner, folder / "report", title=f"carbs-like: {folder.name}", verify=verify,
                        target=verify.get("target") if verify else None, n_bootstrap=args.bootstrap, cost_label=label,
                        loss_label=DEMO_LOSS_LABEL if experiment.trainable == DEMO_TRAINABLE else "loss")
    print(f"carbs-like: wrote {html} (open it in a browser) and the figures beside it")
    return 0


def _scaling_values(tuner: Tuner, extra: Sequence[str]) -> dict[str, float]:
    """``--n-params 7e9 --tokens 1.4e11`` -> ``{"n_params": 7e9, "tokens": 1.4e11}`` (any scaling axis)."""
    values: dict[str, float] = {}
    it = iter(extra)
    for flag in it:
        if not flag.startswith("--"):
            raise UsageError(f"unexpected argument {flag!r}; give scaling axes as --NAME VALUE")
        name, _, inline = flag[2:].partition("=")
        name = name.replace("-", "_")
        if name not in tuner.space.scaling:
            axes = ", ".join("--" + s.replace("_", "-") for s in tuner.space.scaling)
            raise UsageError(f"unknown option --{name.replace('_', '-')}; the scaling axes are {axes} (or --cost)")
        raw = inline or next(it, None)
        try:
            values[name] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise UsageError(f"--{name.replace('_', '-')} needs a number, got {raw!r}") from None
        if not (values[name] > 0 and math.isfinite(values[name])):
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {raw}")
    return values


def cmd_propose(args: argparse.Namespace, extra: Sequence[str]) -> int:
    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    scaling = _scaling_values(tuner, extra)
    if bool(scaling) == (args.cost is not None):
        axes = " ".join(f"--{s.replace('_', '-')} X" for s in tuner.space.scaling)
        raise UsageError(f"give the target size ({axes}) or --cost C, not both")
    pred = predict(fit_law(tuner, n_bootstrap=args.bootstrap), scaling=scaling or None, cost=args.cost)
    print(format_prediction(pred, tuner))
    if args.json:
        print(json.dumps(pred.config, indent=1))
    return 0


def cmd_verify(args: argparse.Namespace, extra: Sequence[str]) -> int:
    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    scaling = _scaling_values(tuner, extra)
    if not scaling and args.cost is None:
        raise UsageError("give the target size (e.g. --n-params 3e6 --tokens 1.5e7) or --cost C")
    run_verify(tuner, experiment, folder, scaling=scaling or None, cost=args.cost,
               factors=args.factors, params=args.params, dry_run=args.dry_run, n_bootstrap=args.bootstrap,
               seeds=args.seeds)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Search the tiny LM below the top of its range, propose for ~3x larger, train that and its
    neighbours there, and print the verdict (see :data:`HOLD_OUT`)."""
    start, cpu0 = time.time(), _cpu_seconds()
    folder = Path(args.path)
    space = held_out_space(demo_space(), factor=HOLD_OUT)
    experiment = Experiment(space=space.to_dict(), trainable=DEMO_TRAINABLE, trials=args.trials,
                            budget=args.budget, concurrency=args.concurrency, seed=args.seed,
                            cost="flops", gpus_per_trial=args.gpus_per_trial,
                            settings={**DEMO_SETTINGS, "target": held_out_target(space, factor=HOLD_OUT)})
    print("carbs-like demo: tuning a tiny transformer LM (byte-level, trained on the Python standard "
          "library's source) over model size, tokens, lr, batch size and weight decay; the cost is the "
          f"model's training FLOPs. It searches sizes up to 1/{HOLD_OUT:g} of the top of its range, "
          f"proposes for {HOLD_OUT:g}x the largest size it trained (params and tokens), then trains the "
          f"proposal there with lr x0.5 and x2 and a second seed. {DEMO_DURATION}", flush=True)
    tuner = run_experiment(folder, experiment, backend=args.backend)
    target = demo_target(tuner, factor=HOLD_OUT)
    print("\nfitting the scaling law ...", flush=True)
    try:
        law = fit_law(tuner, n_bootstrap=args.bootstrap)
    except UsageError as e:
        html = write_report(tuner, folder / "report", title=_DEMO_TITLE, verify=read_verify(folder),
                            cost_label=DEMO_COST_LABEL, loss_label=DEMO_LOSS_LABEL)
        print(f"report: {html}\ncarbs-like: no proposal: {e}\nContinue the search: carbs-like demo --trials "
              f"{totals(tuner)[0] + 16}")
        return 1
    # A value clamped to its bounds is said in the proposal's notes; the warning would repeat it.
    warnings.filterwarnings("ignore", message=".*outside the param's bounds", category=UserWarning)
    pred = predict(law, scaling=target)
    print(f"\nproposal for a model {HOLD_OUT:g}x larger than any trained (n_params and tokens x{HOLD_OUT:g}):")
    print(format_prediction(pred, tuner))
    print("\nchecking it there (sizes no trial saw) ...", flush=True)
    record = run_verify(tuner, experiment, folder, scaling=target, cost=None, factors=[0.5, 2.0],
                        params=["lr"], law=law, seeds=2)
    html = write_report(tuner, folder / "report", title=_DEMO_TITLE, law=law, proposal=pred, target=target,
                        verify=record, cost_label=DEMO_COST_LABEL, loss_label=DEMO_LOSS_LABEL)
    print(f"report: {html}")
    print(f"(demo wall time {clock(time.time() - start)}, {_cpu_seconds() - cpu0:.0f} CPU seconds in this "
          "process and its local workers)")
    return 0


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# The demo holds out the top of the tiny LM's range: it searches n_params and tokens up to 1/3 of
# searchspaces/tiny_lm.toml's bounds and checks its proposal at 3x the largest trained size.
HOLD_OUT = 3.0
# Measured (uninterrupted run, 2 cores shared with other jobs, load 2.5-3.9, local backend): 9 min 30 s
# wall, 575 CPU s in all (search 7.6 min; 4 checks at the target, 1 torch thread each).
DEMO_DURATION = ("Measured on 2 shared cores: about 10 minutes in all (7.6 min of search, then 4 checks "
                 "at the target); longer on a busier machine.")
_DEMO_TITLE = "carbs-like demo: a tiny LM on the Python standard library"
DEMO_COST_LABEL = "cost (training FLOPs)"
DEMO_LOSS_LABEL = "validation loss (nats/byte)"


def demo_space() -> SearchSpace:
    """The demo's space: ``searchspaces/tiny_lm.toml`` in a source checkout, else the built-in copy."""
    file = _REPO / "searchspaces" / "tiny_lm.toml"
    if file.is_file():
        return load_space(file)
    from ..testing.tinylm import search_space

    return search_space()


def cmd_repair(args: argparse.Namespace) -> int:
    """Cut a corrupt journal back to its last valid event, keeping a backup of the whole file."""
    folder = Path(args.path)
    journal = folder / JOURNAL_FOLDER if (folder / EXPERIMENT_FILE).exists() else folder
    try:
        kept, dropped, backup = Tuner.repair(journal)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:  # the header itself is unreadable
        raise UsageError(str(e)) from None
    if backup is None:
        print(f"carbs-like: {journal}: the journal is valid ({kept} events); nothing to repair")
    else:
        print(f"carbs-like: kept the first {kept} events of {journal}, dropped {dropped} line(s) from the first "
              f"bad one on; the whole file is backed up at {backup}")
    return 0


# ------------------------------------------------------------------------ parser --------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="carbs-like",
        description="Cost-aware hyperparameter search that learns scaling laws and proposes "
                    "hyperparameters for larger models.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def limits(q: argparse.ArgumentParser, *, trials: int, budget: float | None, concurrency: int) -> None:
        q.add_argument("--trials", type=int, default=trials, help=f"total trials (default {trials})")
        q.add_argument("--budget", type=float, default=budget,
                       help="stop once the summed cost reaches this" + (f" (default {budget:g})" if budget else ""))
        q.add_argument("--concurrency", type=int, default=concurrency, help=f"trials at once (default {concurrency})")
        q.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial (Ray; default 0)")
        q.add_argument("--backend", choices=["auto", "ray", "local"], default="auto",
                       help="ray (Ray Tune + CarbsSearcher), local (process pool), auto: ray when installed")
        q.add_argument("--seed", type=int, default=0)

    def bootstrap(q: argparse.ArgumentParser, default: int = N_BOOTSTRAP) -> None:
        q.add_argument("--bootstrap", type=int, default=default,
                       help=f"scaling-law refits behind the uncertainty bands (default {default}; fewer is faster)")

    q = sub.add_parser("demo", help="tune a tiny LM on this machine (~10 min on 2 idle cores), propose for 3x "
                                    "the largest trained size, train the proposal and its neighbours there")
    q.add_argument("--path", default="runs/demo", help="experiment folder (default runs/demo)")
    # 60 trials: the scaling law needs >= 32 successful runs (measured: 8.4 min for the search over the
    # held-out range on 2 cores shared with other jobs, 934 trial-seconds).
    # The demo's cost is FLOPs (the same on any machine); no cost budget by default.
    limits(q, trials=60, budget=None, concurrency=2)
    bootstrap(q)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("tune", help="tune a trainable over a search-space file (resumes on the same --path)")
    q.add_argument("space_file", metavar="SPACE_FILE", help="a .toml/.yaml/.json search space (see searchspaces/)")
    q.add_argument("--trainable", required=True, help="module:function taking a config dict, returning {loss, cost}")
    q.add_argument("--path", default=None, help="experiment folder (default runs/<space file name>)")
    q.add_argument("--metric", default="loss", help="result key of the loss to minimise (default loss)")
    q.add_argument("--cost-key", default="cost", help="result key of the cost (default cost; else wall seconds)")
    q.add_argument("--cpus-per-trial", type=int, default=1)
    q.add_argument("--target", metavar="AXIS=VALUE,...", default=None,
                   help="the scale you will train at (e.g. n_params=7e9,tokens=1.4e11): half the asks then "
                        "serve the proposal there")
    q.add_argument("--enqueue", metavar="FILE", default=None,
                   help="configs to run first: a JSON list, or one JSON object a line (skipped when already run)")
    limits(q, trials=50, budget=None, concurrency=2)
    q.set_defaults(func=cmd_tune)

    q = sub.add_parser("status", help="table of trials and the front")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--all", action="store_true", help="list every trial")
    q.add_argument("--no-proposal", dest="proposal", action="store_false",
                   help="skip the scaling law's proposal (a fit: a few seconds)")
    bootstrap(q)
    q.set_defaults(func=cmd_status)

    q = sub.add_parser("export", help="every trial (config, loss, cost, status, metadata) as CSV or JSON")
    q.add_argument("path", metavar="PATH")
    kind = q.add_mutually_exclusive_group()
    kind.add_argument("--csv", action="store_true", help="CSV, a column per param (the default)")
    kind.add_argument("--json", action="store_true", help="versioned JSON (format carbs_like.export)")
    q.add_argument("-o", "--output", default=None, help="write to this file (atomically) instead of stdout")
    q.set_defaults(func=cmd_export)

    q = sub.add_parser("serve", help="a live, read-only web page of the experiments in PATH (or PATH itself)")
    q.add_argument("path", metavar="PATH", help="an experiment folder, or a folder of them (e.g. runs)")
    q.add_argument("--port", type=int, default=8080, help="default 8080")
    q.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    q.set_defaults(func=cmd_serve)

    q = sub.add_parser("report", help="write PATH/report/report.html and its figures")
    q.add_argument("path", metavar="PATH")
    bootstrap(q)
    q.set_defaults(func=cmd_report)

    target_help = ("The target size is --NAME VALUE for each scaling axis of the experiment's space, e.g. "
                   "--n-params 2e6 --tokens 1e7 (values may lie far beyond the searched ranges).")
    q = sub.add_parser("propose", help="config for a larger run: --n-params N --tokens D (any scaling axis) or --cost C",
                       epilog=target_help)
    q.add_argument("path", metavar="PATH")
    q.add_argument("--cost", type=float, default=None, help="compute-optimal config for this budget")
    q.add_argument("--json", action="store_true", help="also print the config as JSON")
    bootstrap(q)
    q.set_defaults(func=cmd_propose, takes_extra=True)

    q = sub.add_parser("verify", help="train the proposal and perturbations of it at the target size",
                       epilog=target_help + " It prints the predicted time first; --dry-run stops there.")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--cost", type=float, default=None)
    q.add_argument("--params", nargs="+", default=["lr"],
                   help="params to perturb, e.g. lr batch_size weight_decay (default lr)")
    q.add_argument("--factors", nargs="+", type=float, default=[0.5, 2.0], help="multipliers (default 0.5 2)")
    q.add_argument("--seeds", type=int, default=1,
                   help="trainings of the proposal (config key seed = 0, 1, ...): their spread is the noise floor")
    q.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time only")
    bootstrap(q)
    q.set_defaults(func=cmd_verify, takes_extra=True)

    q = sub.add_parser("repair", help="cut a corrupt journal back to its last valid event (keeps a backup)")
    q.add_argument("path", metavar="PATH", help="an experiment folder, or a journal folder")
    q.set_defaults(func=cmd_repair)
    return p


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``carbs-like`` command; returns the exit status."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)  # `kill` stops as cleanly as Ctrl-C
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    debug = args.debug or "--debug" in extra
    extra = [a for a in extra if a != "--debug"]
    try:
        if getattr(args, "takes_extra", False):
            return args.func(args, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "tune" and args.path is None:
            args.path = str(Path("runs") / Path(args.space_file).stem)
        return args.func(args)
    except UsageError as e:
        if debug:
            raise
        print(f"carbs-like: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncarbs-like: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
