"""The CLI's Ray backend: runs an experiment through Ray Tune with a :class:`CarbsSearcher`.

Imported only when the Ray backend is used. Each (re)start of ``carbs-like tune`` is a fresh Tune
experiment under ``PATH/ray/runN``; the search itself continues from the experiment's journaled
tuner, so nothing depends on restoring Tune's own state.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import ray
from ray import tune

from ..ray import CarbsSearcher
from ..tuner import Tuner
from .experiment import Experiment, limits_reached, save_snapshot, totals
from .run import Progress, run_trainable

__all__ = ["run"]


def ray_trial(config: dict[str, Any], *, spec: str, metric: str, cost: str, threads: int) -> None:
    """The Tune function trainable: run the user's trainable and report its normalised result."""
    result = run_trainable(spec, {k: config[k] for k in config}, metric=metric, cost=cost, threads=threads)
    tune.report(result)


class ProgressCallback(tune.Callback):
    """Prints a row per finished trial and snapshots the tuner into ``PATH/tuner.json``."""

    def __init__(self, searcher: CarbsSearcher, folder: Path, progress: Progress, first_label: int) -> None:
        self.searcher = searcher
        self.folder = folder
        self.progress = progress
        self.n = first_label

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial, dict(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        result.update(failed=True, error=str(getattr(trial, "error_message", "") or "the trial raised").strip()[:200])
        result.setdefault("cost", float(result.get("time_total_s", 0.0)) or 1e-9)
        self._finished(trial, result)

    def _finished(self, trial: Any, result: dict[str, Any]) -> None:
        if "cost" not in result:
            return
        tuner_id = self.searcher.tuner_id_of(trial.trial_id)
        self.progress.row(tuner_id if tuner_id is not None else f"r{self.n}", trial.config, result)
        self.n += 1
        save_snapshot(self.searcher.get_state()["tuner"], self.folder)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with its own state
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.searcher = self.folder = self.progress = None  # type: ignore[assignment]
        self.n = 0


def run(tuner: Tuner, experiment: Experiment, folder: Path, progress: Progress) -> None:
    """Run trials through Tune until the experiment's trial count or budget is reached."""
    n_done, spent_cost = totals(tuner)
    remaining = experiment.trials - n_done
    resources = {"cpu": experiment.cpus_per_trial, "gpu": experiment.gpus_per_trial}
    searcher = CarbsSearcher(
        tuner, metric="loss", cost="cost", max_trials=remaining,
        max_cost=None if experiment.budget is None else experiment.budget - spent_cost,
        max_concurrent=experiment.concurrency, resources=resources,
    )
    _init_ray(experiment)
    trainable = tune.with_resources(
        tune.with_parameters(ray_trial, spec=experiment.trainable, metric=experiment.metric,
                             cost=experiment.cost, threads=experiment.cpus_per_trial),
        resources,
    )
    storage = (folder / "ray").resolve()
    name = f"run{len(list(storage.glob('run*'))) if storage.exists() else 0}"
    callback = ProgressCallback(searcher, folder, progress, first_label=n_done)
    tuner_ray = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0, callbacks=[callback],
                                  log_to_file=True),
    )
    # Tune stops gracefully on SIGINT (Ctrl-C); make `kill` (SIGTERM) do the same.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        tuner_ray.fit()
    finally:
        searcher.tuner  # noqa: B018 - tells the results still queued in the searcher's inbox
        ray.shutdown()
    if limits_reached(experiment, *totals(searcher.tuner)) is None:
        raise KeyboardInterrupt  # Tune stopped early: it was interrupted


def _init_ray(experiment: Experiment) -> None:
    """A local Ray sized for the experiment, or the cluster named by ``RAY_ADDRESS``."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the CLI prints its own table
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    cwd = os.getcwd()  # user trainables next to the command are importable in the workers
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH")) if p)
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level="ERROR")
        return
    cpus = max(experiment.concurrency * experiment.cpus_per_trial, os.cpu_count() or 1)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=True)
