"""CarbsScheduler: cost-aware early stopping for Ray Tune (re-exported by ``carbs_like.ray``).

It talks to the searcher only through the searcher's public methods (``adopt``, ``mark_truncated``,
``front``, ``is_running``, ``resources_of``, ``loss_of``, ``cost_metric``), and decides with the
pure rule in :mod:`carbs_like.stopping`."""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

from ray import cloudpickle
from ray.exceptions import ActorUnavailableError, NodeDiedError, RayActorError, RayTaskError
from ray.tune.experiment import Trial as RayTrial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.utils import flatten_dict

from ..stopping import hopeless
from .searcher import CarbsSearcher
from .trials import LiveTrial

__all__ = ["CarbsScheduler", "failure_kind"]

logger = logging.getLogger(__name__)

# Errors that come from losing a trial's machine rather than from its config.
_NODE_ERRORS = (NodeDiedError, ActorUnavailableError)
_NODE_DEATH = re.compile(r"(its|the) node (has )?(died|is dead)|node .{0,60}marked (as )?dead|preempt", re.I)


class CarbsScheduler(FIFOScheduler):
    """Cost-aware early stopping for trials that report a loss curve.

    After a grace period, a running trial is stopped when even an optimistic forecast of its loss
    at the cost it will have spent cannot reach the front (see :func:`carbs_like.stopping.hopeless`).
    The searcher records it as a *truncated observation*: an ordinary successful observation at
    the loss it had reached and the cost it had spent, with ``metadata["truncated"] = True``. That
    loss is an upper bound on what the trial would have reached, so the point steers the search
    away without ever flattering the front; and the cost it spent counts against the budget.

    The forecast needs to know what the trial will have spent at its end: from the result key
    ``progress`` (fraction done, in (0, 1]) or, failing that, ``max_t`` units of ``time_attr``.
    A trial that reports neither runs to its end.

    Tune does not checkpoint schedulers: after ``tune.Tuner.restore`` the scheduler rebuilds its
    state from the trials Tune re-adds (``on_trial_add``), and settles with the searcher the
    trials Tune will not run again.

    Args:
        progress: the result key with the fraction of the trial done.
        time_attr: the result key counting the trial's steps, used with ``max_t``.
        max_t: the number of ``time_attr`` units a trial runs, if it does not report ``progress``.
        grace: never stop a trial before this fraction of it is done.
        min_results: never stop a trial with fewer results.
        margin: stop only if the forecast is worse than the front by more than ``margin`` times
            the front's loss.
        window: results whose slope sets the forecast's rate.
    """

    def __init__(
        self,
        *,
        progress: str = "progress",
        time_attr: str = "training_iteration",
        max_t: float | None = None,
        grace: float = 0.25,
        min_results: int = 3,
        margin: float = 0.0,
        window: int = 3,
    ) -> None:
        super().__init__()
        if not 0.0 <= grace <= 1.0:
            raise ValueError(f"grace={grace!r}: must be a fraction in [0, 1]")
        if max_t is not None and not max_t > 0:
            raise ValueError(f"max_t={max_t!r}: must be positive or None")
        for name, value, least in (("min_results", min_results, 2), ("window", window, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}={value!r}: must be an int >= {least}")
        self.progress, self.time_attr, self.max_t = progress, time_attr, max_t
        self.grace, self.min_results, self.margin, self.window = grace, min_results, margin, window
        self._curves: dict[str, list[tuple[float, float]]] = {}
        self._searcher: CarbsSearcher | None = None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the metric and mode are the searcher's

    def on_trial_add(self, tune_controller: Any, trial: RayTrial) -> None:
        searcher = self._find_searcher(tune_controller)
        pgf = trial.placement_group_factory
        resources = pgf.required_resources if pgf else None
        if trial.status in (RayTrial.TERMINATED, RayTrial.ERROR):
            # Re-added on restore and not run again (e.g. resume_unfinished=False): make sure the
            # searcher accounts for it, as truncated if it had not run to its end.
            if searcher.is_running(trial.trial_id):
                last = flatten_dict(dict(trial.last_result or {}))
                if last and not last.get("done", False):
                    searcher.mark_truncated(trial.trial_id)
                searcher.on_trial_complete(
                    trial.trial_id, result=last or None, error=trial.status == RayTrial.ERROR
                )
            return
        searcher.adopt(trial.trial_id, trial.config, resources)
        self._curves[trial.trial_id] = []

    def on_trial_result(self, tune_controller: Any, trial: RayTrial, result: dict) -> str:
        searcher = self._find_searcher(tune_controller)
        value = result.get(searcher.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return TrialScheduler.CONTINUE
        live = LiveTrial(tuner_id=None, config={}, resources=self._resources(searcher, trial))
        live.update(result, metric=searcher.metric, cost=searcher.cost_metric)
        cost, _ = live.spent(None)
        curve = self._curves.setdefault(trial.trial_id, [])
        curve.append((cost, searcher.loss_of(float(value))))
        fraction = self._fraction(result)
        if fraction is None or fraction < self.grace or len(curve) < self.min_results or fraction >= 1.0:
            return TrialScheduler.CONTINUE
        if hopeless(curve, final_cost=cost / fraction, front=searcher.front(),
                    margin=self.margin, window=self.window):
            searcher.mark_truncated(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: RayTrial, result: dict) -> None:
        self._curves.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: RayTrial) -> None:
        # Tune calls this before it tells the searcher (or retries the trial): say whether the
        # node died (a lost run, kept out of the models) or the trainable raised.
        self._find_searcher(tune_controller).mark_failure(trial.trial_id, failure_kind(_error_of(trial)))
        self._curves.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: RayTrial) -> None:
        self._curves.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"CarbsScheduler: following {len(self._curves)} loss curves"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_curves": {}, "_searcher": None}

    # ------------------------------------------------------------------ internals ----------
    def _fraction(self, result: Mapping[str, Any]) -> float | None:
        value = result.get(self.progress)
        if isinstance(value, (int, float)) and 0 < value <= 1:
            return float(value)
        steps = result.get(self.time_attr)
        if self.max_t is not None and isinstance(steps, (int, float)) and steps > 0:
            return min(float(steps) / self.max_t, 1.0)
        return None

    def _resources(self, searcher: CarbsSearcher, trial: RayTrial) -> Mapping[str, float] | None:
        resources = searcher.resources_of(trial.trial_id)
        if resources is not None:
            return resources
        pgf = trial.placement_group_factory
        return pgf.required_resources if pgf else None

    def _find_searcher(self, tune_controller: Any) -> CarbsSearcher:
        if self._searcher is None:
            searcher = getattr(tune_controller.search_alg, "searcher", None)
            while searcher is not None and not isinstance(searcher, CarbsSearcher):
                searcher = getattr(searcher, "searcher", None)
            if searcher is None:
                raise ValueError(
                    "CarbsScheduler works with a CarbsSearcher: pass "
                    "tune.TuneConfig(search_alg=CarbsSearcher(...), scheduler=CarbsScheduler())"
                )
            self._searcher = searcher
        return self._searcher


def failure_kind(error: BaseException | None) -> str:
    """``"node"`` if a trial's error says its node died, was preempted or became unreachable,
    else ``"error"`` (the trainable raised, ran out of memory, its ``__init__`` failed, or the cause is unknown).

    Node deaths reach Tune as ``ActorUnavailableError`` (the actor's node stopped answering),
    ``NodeDiedError``, or an actor error whose node was preempted or whose message says the node
    died; an exception in the trainable arrives as a ``RayTaskError`` wrapping it.
    """
    if isinstance(error, RayTaskError) and not isinstance(error, RayActorError):
        cause = error.as_instanceof_cause()
        error = cause if isinstance(cause, RayActorError) else None
    if isinstance(error, _NODE_ERRORS):
        return "node"
    if isinstance(error, RayActorError) and not error.actor_init_failed:
        text = str(error)
        if error.preempted or (_NODE_DEATH.search(text) and "memory" not in text.lower()):
            return "node"
    return "error"


def _error_of(trial: RayTrial) -> BaseException | None:
    """The exception Tune recorded for a trial (its local ``error.pkl``, written before Tune calls
    the scheduler; the copy on the storage is synced later), or None if none is readable."""
    path = trial.pickled_error_file
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            return cloudpickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as e:
        logger.warning("CarbsScheduler: cannot read the error of trial %s (%s); counted as a trial error",
                       trial.trial_id, e)
        return None
