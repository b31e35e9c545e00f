"""The ``carbs-like`` command: tune, status, report, propose, verify, demo.

An *experiment folder* (``runs/NAME``) holds everything about one search::

    runs/NAME/experiment.json   what is tuned: the space, the trainable, the limits (versioned JSON)
    runs/NAME/tuner.json        the tuner's state after every finished trial (Tuner.save)
    runs/NAME/journal/          the tuner's event journal, when carbs_like.journal is available
    runs/NAME/ray/              Ray Tune's own experiment folders, one per (re)start
    runs/NAME/report/           report.html and the figures
    runs/NAME/verify.json       the latest ``carbs-like verify``: its runs and verdict
    runs/NAME/verify_runs.jsonl every run verify trained, at any target (append-only)

Running ``tune`` (or ``demo``) again on the same folder resumes: finished trials are kept, trials
that were running when it stopped are run again, and the search continues up to ``--trials`` /
``--budget``.

A *trainable* is ``module:function``; the function takes a config dict and returns a dict with
the loss and the cost (keys ``loss`` and ``cost`` unless ``--metric``/``--cost-key`` say
otherwise; ``failed: True`` or a NaN loss marks a failed run). A Ray function trainable that
calls ``ray.tune.report`` itself and returns None also works with the Ray backend.

Errors are one line (``carbs-like: error: ...``); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .space import SearchSpace
    from .tuner import Tuner

__all__ = ["Experiment", "UsageError", "main"]

EXPERIMENT_FILE = "experiment.json"
TUNER_FILE = "tuner.json"
VERIFY_FILE = "verify.json"
_FORMAT = "carbs_like.experiment"
_VERSION = 1
_REPO = Path(__file__).resolve().parent.parent
DEMO_TRAINABLE = "carbs_like.tinylm:train"
# The demo refits the GPs less often and scores fewer candidates: asks take ~0.5 s instead of
# several seconds on 2 busy cores, which buys more trials in the 10 minutes.
DEMO_SETTINGS = {"n_candidates": 500, "fit_maxiter": 40, "refit_always_below": 12, "refit_growth": 1.25}


class UsageError(Exception):
    """A problem with the user's input; the CLI prints its message as one line."""


# ------------------------------------------------------------------------ experiment ----------
@dataclass(frozen=True)
class Experiment:
    """What an experiment folder tunes, and its limits (``experiment.json``).

    Attributes:
        space: the search space as data (``SearchSpace.to_dict()``).
        trainable: ``module:function``.
        metric: key of the loss in the trainable's result (minimised).
        cost: key of the cost in the trainable's result.
        trials: stop after this many finished trials in total.
        budget: stop once the summed cost reaches this (None: no limit).
        concurrency: trials run at once.
        gpus_per_trial: GPUs per trial (fractions allowed with Ray).
        cpus_per_trial: CPU threads per trial.
        seed: the tuner's seed.
        settings: ``TunerSettings`` fields for a new tuner (None: the defaults).
    """

    space: dict[str, Any]
    trainable: str
    metric: str = "loss"
    cost: str = "cost"
    trials: int = 50
    budget: float | None = None
    concurrency: int = 2
    gpus_per_trial: float = 0.0
    cpus_per_trial: int = 1
    seed: int = 0
    settings: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError(f"--trials must be >= 1, got {self.trials}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.budget is not None and not (self.budget > 0 and math.isfinite(self.budget)):
            raise UsageError(f"--budget must be a positive number, got {self.budget}")
        if self.gpus_per_trial < 0 or self.cpus_per_trial < 1:
            raise UsageError("--gpus-per-trial must be >= 0 and --cpus-per-trial >= 1")

    def new_tuner(self, path: Path | None = None) -> "Tuner":
        from .tuner import Tuner, TunerSettings

        settings = TunerSettings(**self.settings) if self.settings else None
        return Tuner(self.search_space(), seed=self.seed, settings=settings, path=path)

    def search_space(self) -> "SearchSpace":
        from .space import SearchSpace

        return SearchSpace.from_dict(self.space, source=EXPERIMENT_FILE)

    def save(self, folder: Path) -> None:
        from .tuner import write_json_atomic

        write_json_atomic(folder / EXPERIMENT_FILE, {"format": _FORMAT, "version": _VERSION, **asdict(self)})

    @classmethod
    def load(cls, folder: Path) -> "Experiment":
        file = folder / EXPERIMENT_FILE
        if not file.is_file():
            raise UsageError(f"{folder} is not an experiment folder (no {EXPERIMENT_FILE}); run `carbs-like tune` first")
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as e:
            raise UsageError(f"{file}: corrupt JSON at line {e.lineno}: {e.msg}") from None
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise UsageError(f"{file}: not a carbs_like experiment of version {_VERSION}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def load_space(path: str | Path) -> "SearchSpace":
    """Load a search-space file, turning every problem into a one-line :class:`UsageError`."""
    from .space import SearchSpace

    path = Path(path)
    try:
        space = SearchSpace.from_file(path)
    except (ValueError, FileNotFoundError, TypeError) as e:
        raise UsageError(str(e)) from None
    unknown = sorted(set(_top_level_keys(path)) - {"params", "scaling"})
    if unknown:
        raise UsageError(f"{path}: unknown top-level key(s) {unknown}; a space file has 'params' and 'scaling'")
    return space


def _top_level_keys(path: Path) -> list[str]:
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        import tomllib

        return list(tomllib.loads(text))
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return list(yaml.safe_load(text) or {})
    return list(json.loads(text))


def load_trainable(spec: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``module:function``; the current folder is importable, as with ``python -m``."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"--trainable {spec!r}: expected module:function, e.g. {DEMO_TRAINABLE}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UsageError(
                f"--trainable {spec!r}: no module named {e.name!r}; run from the folder that holds it "
                "or add that folder to PYTHONPATH"
            ) from None
        raise UsageError(f"--trainable {spec!r}: importing module {module_name!r} failed: {e}") from None
    except (ImportError, SyntaxError) as e:
        raise UsageError(f"--trainable {spec!r}: importing module {module_name!r} failed: {e}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:8]
        raise UsageError(f"--trainable {spec!r}: module {module_name!r} has no function {func_name!r}; it has {names}")
    return fn


# ------------------------------------------------------------------------ tuner state ---------
def _journal_available() -> bool:
    return importlib.util.find_spec("carbs_like.journal") is not None


def open_tuner(folder: Path, experiment: Experiment, *, for_search: bool = False) -> "Tuner":
    """The experiment's tuner: from its journal or ``tuner.json`` if it has run, else a new one.

    With ``for_search`` the tuner takes the journal (when available) and pending trials of an
    interrupted run are forgotten, so the search asks for them again.
    """
    from .tuner import Tuner

    journal = folder / "journal"
    if for_search and _journal_available():
        from .journal import JOURNAL_FILE, JournalLockedError

        try:
            if (journal / JOURNAL_FILE).exists():
                tuner = Tuner.resume(journal)
            else:
                tuner = experiment.new_tuner(journal)
                if (folder / TUNER_FILE).exists():  # a folder made without a journal: import its runs
                    _import_runs(tuner, Tuner.load(folder / TUNER_FILE))
        except JournalLockedError as e:
            raise UsageError(f"another carbs-like is tuning in {folder}: {e}") from None
    elif (folder / TUNER_FILE).exists():
        tuner = Tuner.load(folder / TUNER_FILE)
    elif for_search:
        tuner = experiment.new_tuner()
    else:
        raise UsageError(f"{folder}: no finished trials yet (no {TUNER_FILE}); run `carbs-like tune` first")
    if for_search:
        for trial in tuner.pending:
            tuner.forget(trial)
    return tuner


def _import_runs(tuner: "Tuner", source: "Tuner") -> None:
    for row in source.observations().to_dict("records"):
        failed = row["status"] != "ok"
        tuner.add({n: row[n] for n in tuner.space.names}, loss=None if failed else row["loss"], cost=row["cost"],
                  failed=failed)


def save_snapshot(tuner: "Tuner", folder: Path) -> None:
    tuner.save(folder / TUNER_FILE)


# ------------------------------------------------------------------------ running trials ------
def run_trainable(spec: str, config: dict[str, Any], *, metric: str, cost: str, threads: int = 1) -> dict[str, Any]:
    """Call the trainable on one config and normalise its result (runs in a worker process).

    Returns:
        the trainable's result with ``loss`` (NaN when failed), ``cost``, ``failed`` and
        ``seconds`` (wall time, the cost when the trainable reports none).
    """
    os.environ.setdefault("CARBS_LIKE_THREADS", str(threads))
    fn = load_trainable(spec)
    start = time.perf_counter()
    result = fn(dict(config))
    seconds = time.perf_counter() - start
    return normalise_result(result, metric=metric, cost=cost, seconds=seconds)


def normalise_result(result: Any, *, metric: str, cost: str, seconds: float) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise TypeError(f"the trainable returned {type(result).__name__}; it must return a dict with {metric!r} and {cost!r}")
    if metric not in result:
        raise KeyError(f"the trainable's result has no {metric!r} (keys: {sorted(result)}); pass --metric")
    out = {k: v for k, v in result.items() if _is_json_scalar(v)}
    loss = result[metric]
    failed = bool(result.get("failed", False)) or loss is None or not math.isfinite(float(loss))
    out["loss"] = math.nan if failed else float(loss)
    c = result.get(cost)
    out["cost"] = float(c) if c is not None and math.isfinite(float(c)) and float(c) > 0 else max(seconds, 1e-9)
    out["failed"] = failed
    out.setdefault("seconds", seconds)
    return out


def _is_json_scalar(v: Any) -> bool:
    return isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))


def _trial_worker(spec: str, config: dict[str, Any], metric: str, cost: str, threads: int) -> dict[str, Any]:
    """Process-pool entry point: a trial's exception becomes a failed result with its message."""
    start = time.perf_counter()
    try:
        return run_trainable(spec, config, metric=metric, cost=cost, threads=threads)
    except Exception as e:  # noqa: BLE001 - the trial failed; reported as a failure with its error
        return {"loss": math.nan, "cost": max(time.perf_counter() - start, 1e-9), "failed": True,
                "error": f"{type(e).__name__}: {e}"}


def tell_result(tuner: "Tuner", trial_id: int, result: Mapping[str, Any]) -> None:
    """Record a normalised result; extra scalar keys are stored as the observation's metadata."""
    meta = {k: v for k, v in result.items() if k not in ("loss", "cost", "failed") and _is_json_scalar(v)}
    failed = bool(result["failed"])
    tuner.tell(trial_id, loss=None if failed else float(result["loss"]), cost=float(result["cost"]),
               failed=failed, metadata=meta)


def totals(tuner: "Tuner") -> tuple[int, float]:
    """(finished trials, their total cost)."""
    df = tuner.observations()
    return len(df), float(df["cost"].sum())


def _limits_reached(tuner: "Tuner", experiment: Experiment, running: int = 0) -> str | None:
    n, spent_cost = totals(tuner)
    if n + running >= experiment.trials:
        return f"{experiment.trials} trials"
    if experiment.budget is not None and spent_cost >= experiment.budget:
        return f"the cost budget {experiment.budget:g} (spent {spent_cost:.4g})"
    return None


def run_local(tuner: "Tuner", experiment: Experiment, folder: Path, progress: "Progress") -> None:
    """Run trials in a process pool with ``tuner.ask``/``tell`` (no Ray needed)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    running: dict[Any, Any] = {}
    pool = ProcessPoolExecutor(experiment.concurrency, mp_context=ctx, initializer=_ignore_sigint)
    try:
        while True:
            while len(running) < experiment.concurrency and _limits_reached(tuner, experiment, len(running)) is None:
                trial = tuner.ask()
                fut = pool.submit(_trial_worker, experiment.trainable, trial.config, experiment.metric,
                                  experiment.cost, experiment.cpus_per_trial)
                running[fut] = trial
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                trial = running.pop(fut)
                result = fut.result()
                tell_result(tuner, trial.id, result)
                save_snapshot(tuner, folder)
                progress.row(trial.id, trial.config, result)
    finally:
        # On an interrupt, stop the running trials now: they are asked again on resume.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the driver, which stops them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_ray(tuner: "Tuner", experiment: Experiment, folder: Path, progress: "Progress") -> None:
    """Run the search through Ray Tune with :class:`carbs_like.ray.CarbsSearcher`."""
    from . import _cli_ray

    _cli_ray.run(tuner, experiment, folder, progress)


# ------------------------------------------------------------------------ progress ------------
class Progress:
    """Prints one row per finished trial: how many are done, its tuner id, config, loss, cost, the
    front size and the best so far. (Tuner ids are not consecutive under Ray: a trial asked ahead
    and replaced by a fresher ask keeps its id unused.)

    It keeps its own list of (cost, loss) so it never waits for the tuner (which a background
    thread may be fitting).
    """

    def __init__(self, space: "SearchSpace", *, out: Any = None,
                 previous: Sequence[tuple[Any, float, float | None]] = (), total: int | None = None) -> None:
        self.names = list(space.names)
        self.total = total
        self.out = out or sys.stdout
        self.start = time.time()
        self.points: list[tuple[float, float | None]] = [(c, l) for _, c, l in previous]
        self.best: tuple[float, str] | None = None
        for label, _, loss in previous:
            if loss is not None and (self.best is None or loss < self.best[0]):
                self.best = (loss, str(label))
        self._widths: list[int] | None = None

    def header(self) -> None:
        cols = ["done", "trial", *[_short(n) for n in self.names], "loss", "cost", "front", "best (trial)", "time"]
        self._widths = [7, 5, *[9] * len(self.names), 7, 8, 5, 14, 6]
        print("  ".join(c.rjust(w) for c, w in zip(cols, self._widths)), file=self.out, flush=True)

    def row(self, label: Any, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        if self._widths is None:
            self.header()
        failed = bool(result.get("failed")) or not math.isfinite(float(result.get("loss", math.nan)))
        loss = None if failed else float(result["loss"])
        self.points.append((float(result["cost"]), loss))
        if loss is not None and (self.best is None or loss < self.best[0]):
            self.best = (loss, str(label))
        done = f"{len(self.points)}" + (f"/{self.total}" if self.total else "")
        cells = [done, str(label), *[_fmt(config.get(n, "-")) for n in self.names],
                 "failed" if loss is None else f"{loss:.4f}", _fmt(float(result["cost"])),
                 str(front_size(self.points)), f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-",
                 _clock(time.time() - self.start)]
        print("  ".join(c.rjust(w) for c, w in zip(cells, self._widths)), file=self.out, flush=True)  # type: ignore[arg-type]
        if result.get("error"):
            print(f"      trial {label} raised {result['error']}", file=self.out, flush=True)


def front_size(points: Sequence[tuple[float, float | None]]) -> int:
    """Number of (cost, loss) points on the front of lower loss for lower cost."""
    ok = sorted((c, l) for c, l in points if l is not None)
    size, best = 0, math.inf
    for _, loss in ok:
        if loss < best:
            size, best = size + 1, loss
    return size


def _short(name: str) -> str:
    return {"weight_decay": "wd", "batch_size": "batch", "n_params": "n_params"}.get(name, name[:9])


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int) and abs(v) < 100_000:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


# ------------------------------------------------------------------------ commands ------------
def cmd_tune(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    space = load_space(args.space_file)
    load_trainable(args.trainable)  # fail fast, in this process, with a one-line error
    experiment = Experiment(
        space=space.to_dict(), trainable=args.trainable, metric=args.metric, cost=args.cost_key,
        trials=args.trials, budget=args.budget, concurrency=args.concurrency,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial, seed=args.seed,
    )
    run_experiment(folder, experiment, backend=args.backend)
    return 0


def run_experiment(folder: Path, experiment: Experiment, *, backend: str, out: Any = None) -> "Tuner":
    """Start or resume the search in ``folder``; returns the tuner when the limits are reached."""
    out = out or sys.stdout
    experiment = _reconcile(folder, experiment, out=out)
    folder.mkdir(parents=True, exist_ok=True)
    experiment.save(folder)
    tuner = open_tuner(folder, experiment, for_search=True)
    n_done, _ = totals(tuner)
    backend = _choose_backend(backend, out=out)
    limit = f"{experiment.trials} trials" + (f" or cost {experiment.budget:g}" if experiment.budget else "")
    verb = f"resuming at trial {n_done}" if n_done else "starting"
    print(f"carbs-like: {verb} in {folder} ({backend} backend, {experiment.concurrency} at a time, "
          f"up to {limit}); interrupt any time and rerun to resume", file=out, flush=True)
    reached = _limits_reached(tuner, experiment)
    if reached:
        print(f"carbs-like: the experiment already reached {reached}; raise --trials or --budget to go on", file=out)
        return tuner
    df = tuner.observations()
    previous = [(int(t), float(c), None if s != "ok" else float(l))
                for t, c, l, s in zip(df["trial_id"], df["cost"], df["loss"], df["status"])]
    progress = Progress(tuner.space, out=out, previous=previous, total=experiment.trials)
    try:
        (run_ray if backend == "ray" else run_local)(tuner, experiment, folder, progress)
    finally:
        save_snapshot(tuner, folder)
        _close(tuner)
    df = tuner.observations()
    print(f"carbs-like: done: {len(df)} trials ({int((df['status'] == 'ok').sum())} ok), "
          f"{len(tuner.pareto_front())} on the front, total cost {df['cost'].sum():.4g}",
          file=out, flush=True)
    return tuner


def _close(tuner: "Tuner") -> None:
    close = getattr(tuner, "close", None)
    if callable(close):
        close()


def _reconcile(folder: Path, experiment: Experiment, *, out: Any) -> Experiment:
    """On resume the space and trainable must match; the limits may change."""
    if not (folder / EXPERIMENT_FILE).exists():
        return experiment
    old = Experiment.load(folder)
    if old.space != experiment.space:
        raise UsageError(f"{folder} holds an experiment with another search space; use a new --path")
    if old.trainable != experiment.trainable:
        raise UsageError(f"{folder} tunes {old.trainable}, not {experiment.trainable}; use a new --path")
    return experiment


def _choose_backend(backend: str, *, out: Any) -> str:
    if backend != "auto":
        if backend == "ray" and not _ray_ready():
            raise UsageError("--backend ray needs ray[tune] and carbs_like.ray: pip install 'carbs-like[ray]'")
        return backend
    if _ray_ready():
        return "ray"
    print("carbs-like: Ray Tune (or carbs_like.ray) is not available; running trials in local processes",
          file=out)
    return "local"


def _ray_ready() -> bool:
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("carbs_like.ray") is not None


def cmd_status(args: argparse.Namespace) -> int:
    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    print(status_text(tuner, experiment, folder, all_trials=args.all))
    return 0


def status_text(tuner: "Tuner", experiment: Experiment, folder: Path, *, all_trials: bool = False) -> str:
    df = tuner.observations()
    ok = df[df["status"] == "ok"]
    lines = [
        f"{folder}: {experiment.trainable}, {len(df)} trials ({len(ok)} ok, {len(df) - len(ok)} failed), "
        f"limit {experiment.trials} trials" + (f", budget {experiment.budget:g}" if experiment.budget else ""),
        f"total cost {df['cost'].sum():.4g}; best loss "
        + (f"{ok['loss'].min():.4f} (trial {int(ok.loc[ok['loss'].idxmin(), 'trial_id'])})" if len(ok) else "-"),
        "",
        "front (lower loss for lower cost):",
        _table(tuner.pareto_front(), tuner.space.names),
    ]
    if len(df):
        shown = df if all_trials else df.tail(15)
        lines += ["", "trials" + ("" if all_trials else f" (last {len(shown)}; --all for every one)") + ":",
                  _table(shown, tuner.space.names)]
    return "\n".join(lines)


def _table(df: "pd.DataFrame", names: Sequence[str]) -> str:
    if df.empty:
        return "  (none)"
    cols = ["trial_id", *names, "loss", "cost", "status"]
    def cell(col: str, v: Any) -> str:
        if isinstance(v, float) and math.isnan(v):
            return "-"
        return f"{v:.4f}" if col == "loss" else _fmt(v)

    rows = [[cell(c, v) for c, v in zip(cols, r)] for r in df[cols].itertuples(index=False)]
    head = ["trial", *[_short(n) for n in names], "loss", "cost", "status"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    out = ["  " + "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    label = DEMO_COST_LABEL if experiment.trainable == DEMO_TRAINABLE else f"cost ({experiment.cost})"
    html = write_report(tuner, folder / "report", title=f"carbs-like: {folder.name}",
                        verify=_read_verify(folder), n_bootstrap=args.bootstrap, cost_label=label)
    print(f"carbs-like: wrote {html} (open it in a browser) and the figures beside it")
    return 0


def _read_verify(folder: Path) -> dict[str, Any] | None:
    file = folder / VERIFY_FILE
    return json.loads(file.read_text()) if file.exists() else None


def _scaling_values(tuner: "Tuner", extra: Sequence[str]) -> dict[str, float]:
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
    from ._propose import fit_law, format_prediction, predict

    pred = predict(fit_law(tuner, n_bootstrap=args.bootstrap), scaling=scaling or None, cost=args.cost)
    print(format_prediction(pred, tuner))
    if args.json:
        print(json.dumps(pred.config, indent=1))
    return 0


def cmd_verify(args: argparse.Namespace, extra: Sequence[str]) -> int:
    from ._propose import run_verify

    folder = Path(args.path)
    experiment = Experiment.load(folder)
    tuner = open_tuner(folder, experiment)
    scaling = _scaling_values(tuner, extra)
    if not scaling and args.cost is None:
        raise UsageError("give the target size (e.g. --n-params 3e6 --tokens 1.5e7) or --cost C")
    run_verify(tuner, experiment, folder, scaling=scaling or None, cost=args.cost,
               factors=args.factors, params=args.params, dry_run=args.dry_run, n_bootstrap=args.bootstrap)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._propose import demo_target, format_prediction
    from .report import write_report

    start = time.time()
    folder = Path(args.path)
    space = demo_space()
    experiment = Experiment(space=space.to_dict(), trainable=DEMO_TRAINABLE, trials=args.trials,
                            budget=args.budget, concurrency=args.concurrency, seed=args.seed,
                            gpus_per_trial=args.gpus_per_trial, settings=DEMO_SETTINGS)
    print("carbs-like demo: tuning a tiny transformer LM (byte-level, trained on the Python standard "
          "library's source) over model size, tokens, lr, batch size and weight decay.", flush=True)
    tuner = run_experiment(folder, experiment, backend=args.backend)
    from ._propose import fit_law, predict

    target = demo_target(tuner, factor=10.0)
    print("\nfitting the scaling law ...", flush=True)
    try:
        law = fit_law(tuner, n_bootstrap=args.bootstrap)
    except UsageError as e:
        html = write_report(tuner, folder / "report", title=_DEMO_TITLE, verify=_read_verify(folder),
                            cost_label=DEMO_COST_LABEL)
        print(f"report: {html}\ncarbs-like: no proposal: {e}\nContinue the search: carbs-like demo --trials "
              f"{totals(tuner)[0] + 16}")
        return 1
    pred = predict(law, scaling=target)
    html = write_report(tuner, folder / "report", title=_DEMO_TITLE, law=law, proposal=pred, target=target,
                        verify=_read_verify(folder), cost_label=DEMO_COST_LABEL)
    print(f"report: {html}")
    print("\nproposal for a model 10x larger than any trained (n_params and tokens x10):")
    print(format_prediction(pred, tuner))
    axes = " ".join(f"--{k.replace('_', '-')} {v:.3g}" for k, v in target.items())
    print(f"\ncheck it: carbs-like verify {folder} {axes}\n(demo wall time {_clock(time.time() - start)})")
    return 0


_DEMO_TITLE = "carbs-like demo: a tiny LM on the Python standard library"
DEMO_COST_LABEL = "cost (seconds x devices)"


def demo_space() -> "SearchSpace":
    """The demo's space: ``searchspaces/tiny_lm.toml`` in a source checkout, else the built-in copy."""
    file = _REPO / "searchspaces" / "tiny_lm.toml"
    if file.is_file():
        return load_space(file)
    from .tinylm import search_space

    return search_space()


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

    def bootstrap(q: argparse.ArgumentParser, default: int = 32) -> None:
        q.add_argument("--bootstrap", type=int, default=default,
                       help=f"scaling-law refits behind the uncertainty bands (default {default}; fewer is faster)")

    q = sub.add_parser("demo", help="tune a tiny LM on this machine (~10 min on 2 cores), report, propose 10x")
    q.add_argument("--path", default="runs/demo", help="experiment folder (default runs/demo)")
    # 60 trials: the scaling law needs >= 32 successful runs; ~5-8 min of training on 2 idle cores
    # (measured: 48 trials took 2511 trial-seconds on 2 cores shared ~4x, i.e. ~450 s unshared).
    # No cost budget by default: cost is measured seconds, so a busy machine would stop too early.
    limits(q, trials=60, budget=None, concurrency=2)
    bootstrap(q, 16)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("tune", help="tune a trainable over a search-space file (resumes on the same --path)")
    q.add_argument("space_file", metavar="SPACE_FILE", help="a .toml/.yaml/.json search space (see searchspaces/)")
    q.add_argument("--trainable", required=True, help="module:function taking a config dict, returning {loss, cost}")
    q.add_argument("--path", default=None, help="experiment folder (default runs/<space file name>)")
    q.add_argument("--metric", default="loss", help="result key of the loss to minimise (default loss)")
    q.add_argument("--cost-key", default="cost", help="result key of the cost (default cost; else wall seconds)")
    q.add_argument("--cpus-per-trial", type=int, default=1)
    limits(q, trials=50, budget=None, concurrency=2)
    q.set_defaults(func=cmd_tune)

    q = sub.add_parser("status", help="table of trials and the front")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--all", action="store_true", help="list every trial")
    q.set_defaults(func=cmd_status)

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
    q.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time only")
    bootstrap(q)
    q.set_defaults(func=cmd_verify, takes_extra=True)
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
    # Run the imported module's main, so that its classes (UsageError) are the ones other modules see.
    from carbs_like.cli import main as _main

    sys.exit(_main())
