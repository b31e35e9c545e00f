"""Ray Tune integration: :class:`CarbsSearcher` proposes trials, :class:`CarbsScheduler` stops
trials that cannot reach the front.

Example:
    >>> from ray import tune
    >>> from carbs_like.ray import CarbsScheduler, CarbsSearcher
    >>> searcher = CarbsSearcher(space, metric="loss", cost="cost", max_trials=200)
    >>> tuner = tune.Tuner(
    ...     train,
    ...     tune_config=tune.TuneConfig(search_alg=searcher, scheduler=CarbsScheduler(), num_samples=-1),
    ... )
    >>> tuner.fit()
    >>> searcher.tuner.pareto_front()

How it fits Tune's loop:

* Tune calls ``suggest`` in its single-threaded driver loop, so the searcher never fits a model
  there. A background thread keeps ``n_ready`` trials asked ahead with the current GP
  hyperparameters (conditioning and acquisition only), refits the hyperparameters after new
  results outside the tuner's lock, then re-asks ready trials the new results made stale.
  ``suggest`` only hands a trial out, or returns None (Tune asks again on its next step) while the
  first model is being fitted.
* Results go into an inbox that the thread tells the tuner, so no driver call waits for a fit.
* Ray trial ids (str) map to tuner trial ids (int). A trial the searcher never handed out (Tune
  restarts an errored trial under a new id) is recovered from the config in its results and
  imported with ``Tuner.add`` when it ends.
* ``save``/``restore`` (and so Tune's experiment checkpoints and ``tune.Tuner.restore``) write and
  read versioned JSON: the tuner's ``state_dict()``, the id mapping, the inbox, the budgets.
  Pickling the searcher (Tune cloudpickles it into the experiment) stores the same JSON data.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

try:
    from ray.tune.search import Searcher
    from ray.tune.search.sample import Domain
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "carbs_like.ray needs Ray Tune; install it with: pip install 'carbs-like[ray]'"
    ) from e

from ._ray_book import LiveTrial, config_from_result
from ._ray_scheduler import CarbsScheduler
from .space import SearchSpace
from .trial import Trial
from .tuner import Tuner, TunerSettings, write_json_atomic

__all__ = ["CarbsScheduler", "CarbsSearcher"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FORMAT = "carbs_like.ray.searcher"
_REFIT_SHARE = 2.0  # wait this many times the last refit's duration before the next one

Resources = Mapping[str, float] | Callable[[dict[str, Any]], Mapping[str, float]]


class CarbsSearcher(Searcher):
    """A Ray Tune ``Searcher`` over a carbs_like :class:`Tuner`: cost-aware, resumable.

    Each trial reports the metric (its loss, lower is better unless ``mode="max"``) and,
    optionally, the cost it has spent so far under the name ``cost`` (FLOPs, dollars, any
    positive unit). A trial that reports no cost is charged its GPU-seconds (CPU-seconds if it has
    no GPU): Ray's ``time_total_s`` times its GPUs, which the searcher learns from ``resources``
    or from :class:`CarbsScheduler`. A trial that errors (exception, OOM) is a failed observation
    with the cost it burned.

    Use ``num_samples=-1`` in ``tune.TuneConfig`` and let ``max_trials`` / ``max_cost`` end the
    search (or set ``num_samples``). Concurrency is enforced here (``max_concurrent``, or Tune's
    ``max_concurrent_trials``, which ``set_max_concurrency`` takes over).

    Args:
        space: the search space, or a :class:`Tuner` to continue (e.g. warm-started with ``add``).
        metric: the reported loss.
        cost: the reported cost spent so far (cumulative). Optional per trial, see above.
        mode: ``"min"`` (the default) or ``"max"``; with ``"max"`` the tuner minimises ``-metric``.
        seed: seeds the tuner (ignored when ``space`` is a Tuner).
        settings: the tuner's settings (ignored when ``space`` is a Tuner).
        max_trials: suggest at most this many trials, then return ``Searcher.FINISHED``.
        max_cost: stop suggesting once the trials have spent this much cost in total.
        max_concurrent: at most this many trials running at once (None: as many as Tune can place).
        resources: the trials' resources, a dict or a function of the config (the same you give
            ``tune.with_resources``), used to turn ``time_total_s`` into GPU-seconds.
        n_ready: trials kept asked ahead for ``suggest`` to hand out; default: half the
            concurrency limit, at least 2 (Tune asks for many trials at once when it may run many).
        background: fit and ask in a background thread (the default). False asks inside
            ``suggest``, which is slow but deterministic (tests, debugging).

    Example:
        >>> searcher = CarbsSearcher(space, metric="loss", cost="flops", max_cost=1e20)
        >>> tune.Tuner(train, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1)).fit()
        >>> searcher.tuner.pareto_front()
    """

    def __init__(
        self,
        space: SearchSpace | Tuner,
        metric: str = "loss",
        cost: str = "cost",
        *,
        mode: str = "min",
        seed: int = 0,
        settings: TunerSettings | None = None,
        max_trials: int | None = None,
        max_cost: float | None = None,
        max_concurrent: int | None = None,
        resources: Resources | None = None,
        n_ready: int | None = None,
        background: bool = True,
    ) -> None:
        if isinstance(space, Tuner):
            tuner = space
        elif isinstance(space, SearchSpace):
            tuner = Tuner(space, seed=seed, settings=settings)
        else:
            raise TypeError(f"CarbsSearcher needs a SearchSpace or a Tuner, got {type(space).__name__}")
        _check_mode(mode)
        _check_optional_int("max_trials", max_trials, 1)
        _check_optional_int("max_concurrent", max_concurrent, 1)
        _check_optional_int("n_ready", n_ready, 1)
        if max_cost is not None and not (math.isfinite(max_cost) and max_cost > 0):
            raise ValueError(f"max_cost={max_cost!r}: must be a positive finite number or None")
        if not isinstance(cost, str) or not cost:
            raise TypeError(f"cost must be the name of a reported metric, got {cost!r}")
        super().__init__(metric=metric, mode=mode)
        self._init_runtime()
        self._tuner = tuner
        self._cost = cost
        self._max_trials = max_trials
        self._max_cost = max_cost
        self._max_concurrent = max_concurrent
        self._resources = resources
        self._n_ready = n_ready
        self._background = background
        self._reset_book()
        self._snapshot = tuner.state_dict()

    # ------------------------------------------------------------------ public -------------
    @property
    def tuner(self) -> Tuner:
        """The :class:`Tuner` inside, with every reported result told.

        Read it freely; change it (``add``, ``tell``) only while Tune is not running.
        """
        with self._tuner_lock:
            self._apply_inbox()
        return self._tuner

    @property
    def trial_ids(self) -> dict[str, int | None]:
        """Ray trial id -> tuner trial id of every trial seen (None: running, not suggested here)."""
        with self._tuner_lock:
            self._apply_inbox()
        with self._book_lock:
            out: dict[str, int | None] = {rid: t.tuner_id for rid, t in self._live.items()}
            out.update(self._done)
        return out

    def tuner_id_of(self, trial_id: str) -> int | None:
        """The tuner's id of a Ray trial (None: unknown, or not suggested here).

        Unlike :attr:`trial_ids` it reads only the searcher's book, so it never waits for a
        surrogate fit (a progress callback can call it on every result).
        """
        with self._book_lock:
            if trial_id in self._done:
                return self._done[trial_id]
            live = self._live.get(trial_id)
            return None if live is None else live.tuner_id

    @property
    def spent(self) -> float:
        """The cost spent so far: finished trials plus what running trials have reported."""
        with self._book_lock:
            return self._spent + sum(t.spent(self._resources_of(t))[0] for t in self._live.values()
                                     if t.loss is not None or t.cost is not None)

    @classmethod
    def from_experiment(cls, path: str | Path) -> "CarbsSearcher":
        """The searcher of a Tune experiment folder (``storage_path/name``), as last saved.

        Use it to read the final tuner after ``tune.Tuner.restore(...).fit()``, whose searcher is
        a copy living inside Tune. The result does not run a background thread until used.
        """
        files = sorted(Path(path).glob(Searcher.CKPT_FILE_TMPL.format("*")))
        if not files:
            raise FileNotFoundError(
                f"{path}: no searcher state ({Searcher.CKPT_FILE_TMPL.format('*')}); pass the "
                "experiment folder, i.e. RunConfig(storage_path=...)/<name>"
            )
        return cls._from_state(_read_json(files[-1]), source=str(files[-1]))

    # ------------------------------------------------------------------ Searcher API -------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take ``metric``/``mode`` from ``tune.TuneConfig``; refuse search domains in ``param_space``."""
        if metric:
            self._metric = metric
        if mode:
            _check_mode(mode)
            self._mode = mode
        for key, value in _flat_items(config or {}):
            if isinstance(value, Domain):
                raise ValueError(
                    f"param_space['{key}'] is a Tune search domain ({type(value).__name__}); the "
                    "CarbsSearcher searches its SearchSpace: put the param there, keep only constants "
                    "in param_space"
                )
            if key in self._tuner.space.names:
                raise ValueError(
                    f"param_space sets '{key}', which the CarbsSearcher searches: remove it from "
                    "param_space, or from the SearchSpace to fix it"
                )
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Enforce Tune's ``max_concurrent_trials`` here (so no ConcurrencyLimiter drops results)."""
        _check_optional_int("max_concurrent", max_concurrent, 1)
        self._max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A config for Ray trial ``trial_id``, None to be asked again later, or FINISHED.

        Fast: it hands out a trial the background thread asked ahead.
        """
        self._raise_worker_error()
        with self._book_lock:
            if self._finished or self._budget_spent():
                finished = True
            else:
                finished = False
                if self._max_concurrent is not None and len(self._live) >= self._max_concurrent:
                    return None
        if finished:
            self._finish()
            return Searcher.FINISHED
        if not self._background:
            self._work_once()
        elif not self._ready:
            self._ask_inline_if_cheap()
        with self._book_lock:
            if not self._ready:
                self._wake_worker()
                return None
            trial = self._ready.popleft()
            self._live[trial_id] = LiveTrial(tuner_id=trial.id, config=dict(trial.config))
            self._live[trial_id].resources = self._resources_of(self._live[trial_id])
            self._n_suggested += 1
        self._wake_worker()
        return dict(trial.config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Follow a running trial's results (its last loss and cost are kept for its end)."""
        self._raise_worker_error()
        with self._book_lock:
            if trial_id in self._done and trial_id not in self._warned:
                self._warned.add(trial_id)
                warnings.warn(
                    f"CarbsSearcher: Ray trial {trial_id} reports again after it was recorded (Tune "
                    "resumed it after an error, resume_errored=True); its new results are ignored. "
                    "Restore with restart_errored=True to record re-runs of errored trials",
                    RuntimeWarning, stacklevel=2,
                )
            live = self._live_or_adopt(trial_id, result)
            if live is not None:
                live.update(result, metric=self._metric, cost=self._cost)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record how a trial ended: a loss, a failure (``error``), or nothing if it never ran."""
        self._raise_worker_error()
        with self._book_lock:
            if trial_id in self._done:
                return
            live = self._live_or_adopt(trial_id, result)
            if live is None:
                return
            del self._live[trial_id]
            if result:
                live.update(result, metric=self._metric, cost=self._cost)
            self._settle(trial_id, live, error=error, ran=bool(result) or error)
        if not self._background:
            with self._tuner_lock:
                self._apply_inbox()
        self._wake_worker()

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        raise NotImplementedError(
            "CarbsSearcher needs a cost for every observation: use searcher.tuner.add(config, "
            "loss=..., cost=...) before tune.Tuner.fit()"
        )

    # ------------------------------------------------------------------ persistence --------
    def save(self, checkpoint_path: str) -> None:
        """Write the whole state as versioned JSON (Tune calls this; the file name ends in .pkl)."""
        write_json_atomic(Path(checkpoint_path), self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by ``save``: the same search continues."""
        self.set_state(_read_json(Path(checkpoint_path)), source=checkpoint_path)

    def get_state(self) -> dict[str, Any]:
        """The whole state as JSON data: the tuner's ``state_dict()``, ids, inbox, budgets."""
        if self._tuner_lock.acquire(blocking=False):  # refresh if the worker is not busy
            try:
                self._apply_inbox(force_snapshot=True)
            finally:
                self._tuner_lock.release()
        with self._book_lock:
            return {
                "format": _FORMAT,
                "version": FORMAT_VERSION,
                "tuner": self._snapshot,
                "metric": self._metric,
                "mode": self._mode,
                "cost": self._cost,
                "max_trials": self._max_trials,
                "max_cost": self._max_cost,
                "max_concurrent": self._max_concurrent,
                "resources": dict(self._resources) if isinstance(self._resources, Mapping) else None,
                "n_ready": self._n_ready,
                "background": self._background,
                "inbox": [dict(op) for op in self._inbox],
                "ready": [t.id for t in self._ready],
                "live": {rid: t.to_dict() for rid, t in self._live.items()},
                "done": dict(self._done),
                "n_suggested": self._n_suggested,
                "spent": self._spent,
                "finished": self._finished,
            }

    def set_state(self, state: dict[str, Any], *, source: str = "searcher state") -> None:
        """Replace the state by one from ``get_state`` (checks the format and version)."""
        _check_format(state, source)
        tuner = Tuner.from_state_dict(state["tuner"], source=f"{source}: tuner")
        with self._tuner_lock, self._book_lock:
            self._tuner = tuner
            self._snapshot = state["tuner"]
            self._metric, self._mode, self._cost = state["metric"], state["mode"], state["cost"]
            self._max_trials, self._max_cost = state["max_trials"], state["max_cost"]
            self._max_concurrent, self._n_ready = state["max_concurrent"], state["n_ready"]
            if state["resources"] is not None or not callable(self._resources):
                self._resources = state["resources"]
            pending = {t.id: t for t in tuner.pending}
            self._inbox = deque(state["inbox"])
            self._ready = deque(pending[i] for i in state["ready"] if i in pending)
            self._live = {rid: LiveTrial.from_dict(t) for rid, t in state["live"].items()}
            self._done = dict(state["done"])
            self._n_suggested = int(state["n_suggested"])
            self._spent = float(state["spent"])
            self._finished = bool(state["finished"])

    def __getstate__(self) -> dict[str, Any]:
        # Tune cloudpickles the searcher into its experiment: store JSON data, never the tuner object.
        state = self.get_state()
        state["_callable_resources"] = self._resources if callable(self._resources) else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        Searcher.__init__(self, metric=state["metric"], mode=state["mode"])
        self._init_runtime()
        self._resources = state.pop("_callable_resources", None)
        self._background = bool(state["background"])
        self._reset_book()
        self.set_state(state, source=state.pop("_source", "pickled CarbsSearcher"))

    @classmethod
    def _from_state(cls, state: dict[str, Any], *, source: str) -> "CarbsSearcher":
        _check_format(state, source)
        self = cls.__new__(cls)
        self.__setstate__(dict(state, _callable_resources=None, _source=source))
        return self

    # ------------------------------------------------------------------ internals ----------
    def _init_runtime(self) -> None:
        """Locks, the worker and its wake-up event: never pickled, made fresh on unpickling."""
        self._tuner_lock = threading.RLock()  # guards the tuner; held during fits and asks
        self._book_lock = threading.RLock()  # guards everything else; held only briefly
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_error: BaseException | None = None
        # Observations the tuner had when each ready trial was asked (not saved: after a restore
        # every ready trial counts as fresh).
        self._asked_at: dict[int, int] = {}
        self._refit_n_ok = 0  # successful observations at the worker's last hyperparameter refit
        self._refit_s = self._refit_end = 0.0  # how long the last refit took, when it ended
        self._warned: set[str] = set()

    def _reset_book(self) -> None:
        self._inbox: deque[dict[str, Any]] = deque()  # tells not yet applied to the tuner
        self._ready: deque[Trial] = deque()  # asked ahead, pending in the tuner, not handed out
        self._live: dict[str, LiveTrial] = {}
        self._done: dict[str, int | None] = {}
        self._n_suggested = 0
        self._spent = 0.0
        self._finished = False

    def _resources_of(self, live: LiveTrial) -> Mapping[str, float] | None:
        if live.resources is not None:
            return live.resources
        if callable(self._resources):
            return dict(self._resources(dict(live.config)))
        return self._resources

    def _loss_of(self, value: float) -> float:
        return -value if self._mode == "max" else value

    def _budget_spent(self) -> bool:
        if self._max_trials is not None and self._n_suggested >= self._max_trials:
            return True
        return self._max_cost is not None and self.spent >= self._max_cost

    def _finish(self) -> None:
        """Stop suggesting for good: forget the trials asked ahead."""
        with self._book_lock:
            self._finished = True
            while self._ready:
                self._inbox.append({"op": "forget", "tuner_id": self._ready.popleft().id})
        self._wake_worker()

    def _live_or_adopt(self, trial_id: str, result: Mapping[str, Any] | None) -> LiveTrial | None:
        """The live record of a Ray trial; a trial never handed out is adopted from its result."""
        live = self._live.get(trial_id)
        if live is not None or trial_id in self._done or not result:
            return live
        config = config_from_result(result, self._tuner.space.names)
        if config is None:
            warnings.warn(
                f"CarbsSearcher: Ray trial {trial_id} was not suggested by this searcher and its "
                f"results carry no config for {list(self._tuner.space.names)}; it is not recorded",
                RuntimeWarning, stacklevel=3,
            )
            return None
        try:
            config = self._tuner.space.validate(config)
        except (TypeError, ValueError) as e:
            warnings.warn(
                f"CarbsSearcher: Ray trial {trial_id} is not recorded: {e}", RuntimeWarning, stacklevel=3
            )
            return None
        live = LiveTrial(tuner_id=None, config=config)
        self._live[trial_id] = live
        return live

    def adopt(self, trial_id: str, config: Mapping[str, Any], resources: Mapping[str, float] | None) -> None:
        """Know a Ray trial before its first result (the scheduler calls this from ``on_trial_add``)."""
        with self._book_lock:
            live = self._live.get(trial_id)
            if live is None and trial_id not in self._done:
                live = self._live_or_adopt(trial_id, {"config": dict(config)})
            if live is not None and resources:
                live.resources = dict(resources)

    def mark_truncated(self, trial_id: str) -> None:
        """The scheduler stopped this trial early: record it as a truncated observation."""
        with self._book_lock:
            if trial_id in self._live:
                self._live[trial_id].truncated = True

    def front(self) -> list[tuple[float, float]]:
        """``(cost, loss)`` of finished, untruncated, successful trials (losses as minimised)."""
        with self._book_lock:
            queued = [op for op in self._inbox if op["op"] != "forget"]
        told = [(o.cost, o.loss, o.failed, o.metadata) for o in list(self._tuner._observations)]
        return _front_of(told + [(op["cost"], op["loss"], op["failed"], op["metadata"]) for op in queued])

    def _settle(self, trial_id: str, live: LiveTrial, *, error: bool, ran: bool) -> None:
        """Queue the tell (or add, or forget) for a trial that ended. Caller holds the book lock."""
        if not ran:
            if live.loss is None and live.cost is None:
                # Tune stopped it before it ran (pending when the experiment ended): nothing seen.
                if live.tuner_id is not None:
                    self._inbox.append({"op": "forget", "tuner_id": live.tuner_id})
                self._done[trial_id] = live.tuner_id
                return
            live.truncated = True  # stopped while paused: it did not run to its end
        cost, source = live.spent(self._resources_of(live))
        loss = None if live.loss is None else self._loss_of(live.loss)
        meta: dict[str, Any] = {"ray_trial_id": trial_id, "cost_source": source}
        failed = error or loss is None or not math.isfinite(loss)
        if error:
            meta["reason"] = "error"
        elif loss is None:
            meta["reason"] = f"no '{self._metric}' reported"
            logger.warning(
                "CarbsSearcher: trial %s reported no '%s'; recorded as failed", trial_id, self._metric
            )
        elif not math.isfinite(loss):
            meta["reason"] = "non-finite loss"
        if live.truncated and not failed:
            meta["truncated"] = True
        op = {"op": "tell" if live.tuner_id is not None else "add", "tuner_id": live.tuner_id,
              "config": live.config, "loss": None if failed else loss, "cost": cost, "failed": failed,
              "metadata": meta, "ray_trial_id": trial_id}
        self._inbox.append(op)
        self._done[trial_id] = live.tuner_id
        self._spent += cost

    # ------------------------------------------------------------------ the worker ---------
    def _wake_worker(self) -> None:
        if not self._background:
            return
        if self._worker is None or not self._worker.is_alive():
            if self._worker_error is not None:
                return
            self._worker = threading.Thread(
                target=_worker_main, args=(weakref.ref(self),), name="carbs_like-searcher", daemon=True
            )
            self._worker.start()
        self._wake.set()

    def _raise_worker_error(self) -> None:
        if self._worker_error is not None:
            raise RuntimeError(
                "carbs_like: the CarbsSearcher background thread failed (see the cause below)"
            ) from self._worker_error

    def _work_once(self) -> bool:
        """One step of the worker; returns True if it did something (more may be waiting).

        In order: tell what arrived; ask a trial ahead if fewer than ``n_ready`` are ready (with
        the current hyperparameters: conditioning the GPs and the acquisition only); refit the GP
        hyperparameters when new observations call for it, outside the tuner lock; re-ask a
        ready trial that is older than the newest observations. So ``suggest`` has trials ready
        soon after each result, and they come from the freshest model. Without a background
        thread (``background=False``) it only asks, the usual way, when no trial is ready.
        """
        if not self._background:
            with self._tuner_lock:
                self._apply_inbox()
                if self._wants_ask(ahead=1):
                    self._ask_ahead(stale=None, refit=True)
                    return True
            return False
        with self._tuner_lock:
            self._apply_inbox()
            if self._wants_ask(ahead=self._ready_target()):
                self._ask_ahead(stale=None, refit=False)
                return True
            data = self._tuner._data() if self._wants_refit() else None
        if data is not None:
            started = time.monotonic()
            surrogate = self._tuner.refit_surrogate(data)  # the slow part, outside the lock
            self._refit_s, self._refit_end = time.monotonic() - started, time.monotonic()
            with self._tuner_lock:
                self._tuner.use_surrogate(surrogate, data)
                self._refit_n_ok = int(data.ok.sum())
                with self._book_lock:
                    self._snapshot = self._tuner.state_dict()
            return True
        with self._tuner_lock:
            stale = self._stale_ready()
            if stale is None:
                return False
            self._ask_ahead(stale=stale, refit=False)
            return True

    def _ask_ahead(self, *, stale: Trial | None, refit: bool) -> None:
        """Ask a trial into the ready queue, replacing ``stale`` if still there. Holds the tuner lock."""
        trial = self._tuner.ask(refit=refit)
        with self._book_lock:
            if self._finished:  # the search ended while this trial was being asked
                self._tuner.forget(trial.id)
            elif stale is not None and stale in self._ready:
                self._ready[self._ready.index(stale)] = trial
                self._tuner.forget(stale.id)
            else:
                self._ready.append(trial)
            self._asked_at[trial.id] = len(self._tuner._observations)
            self._snapshot = self._tuner.state_dict()

    def _wants_refit(self) -> bool:
        """New observations call for new GP hyperparameters (the tuner's refit settings), and a
        model is in use (past the space-filling trials). Holds the tuner lock."""
        tuner, s = self._tuner, self._tuner.settings
        n_ok = sum(not o.failed for o in tuner._observations)
        if n_ok < 2 or len(tuner._observations) + len(tuner.pending) < tuner.n_init:
            return False
        last = self._refit_n_ok
        if n_ok == last or not (n_ok < s.refit_always_below or n_ok >= s.refit_growth * last):
            return False
        # Refits take at most a third of the worker's time, so asks keep up with fast trials;
        # in between, new results still enter the GPs exactly (conditioning), only the
        # hyperparameters wait.
        return time.monotonic() - self._refit_end >= _REFIT_SHARE * self._refit_s

    def _ask_inline_if_cheap(self) -> None:
        """Ask in the driver when no model is needed yet (space-filling trials take milliseconds)."""
        if not self._tuner_lock.acquire(blocking=False):
            return
        try:
            tuner = self._tuner
            if len(tuner._observations) + len(tuner.pending) < tuner.n_init and self._wants_ask(ahead=1):
                self._ask_ahead(stale=None, refit=False)
        finally:
            self._tuner_lock.release()

    def _ready_target(self) -> int:
        if self._n_ready is not None:
            return self._n_ready
        return max(2, (self._max_concurrent or 0) // 2)

    def _wants_ask(self, *, ahead: int) -> bool:
        with self._book_lock:
            if self._finished or len(self._ready) >= ahead:
                return False
            return self._max_trials is None or self._n_suggested + len(self._ready) < self._max_trials

    def _stale_ready(self) -> Trial | None:
        """A ready trial asked before the newest observations arrived, if any (not the space-filling ones)."""
        n = len(self._tuner._observations)
        with self._book_lock:
            for trial in self._ready:
                if self._asked_at.get(trial.id, n) < n and trial.metadata.get("source") != "sobol":
                    return trial
        return None

    def _apply_inbox(self, *, force_snapshot: bool = False) -> None:
        """Tell the tuner what the inbox holds. Caller holds the tuner lock."""
        with self._book_lock:
            ops = list(self._inbox)
        if not ops and not force_snapshot:
            return
        added: dict[str, int] = {}
        for op in ops:
            if op["op"] == "forget":
                self._tuner.forget(op["tuner_id"])
                continue
            kwargs = dict(loss=op["loss"], cost=op["cost"], failed=op["failed"], metadata=op["metadata"])
            if op["op"] == "tell":
                self._tuner.tell(op["tuner_id"], **kwargs)
            else:
                added[op["ray_trial_id"]] = self._tuner.add(op["config"], **kwargs).trial_id
        with self._book_lock:
            for _ in ops:
                self._inbox.popleft()
            self._done.update(added)
            self._snapshot = self._tuner.state_dict()


def _worker_main(ref: "weakref.ReferenceType[CarbsSearcher]") -> None:
    """The background thread: works while there is work, sleeps until woken, ends with its searcher."""
    while True:
        searcher = ref()
        if searcher is None:
            return
        wake = searcher._wake
        wake.clear()
        try:
            busy = searcher._work_once()
        except BaseException as e:  # handed to the driver: the next Searcher call raises it
            searcher._worker_error = e
            logger.error("CarbsSearcher background thread failed", exc_info=e)
            return
        del searcher
        if not busy:
            wake.wait(timeout=1.0)


# ---------------------------------------------------------------------- helpers --------------
def _front_of(records: list[tuple[float, float | None, bool, dict]]) -> list[tuple[float, float]]:
    """``(cost, loss)`` of the successful, untruncated ones among ``(cost, loss, failed, metadata)``."""
    return [
        (float(cost), float(loss)) for cost, loss, failed, meta in records
        if not failed and loss is not None and not meta.get("truncated", False)
    ]


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r}: must be 'min' or 'max'")


def _check_optional_int(name: str, value: Any, least: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise ValueError(f"{name}={value!r}: must be an int >= {least} or None")


def _check_format(state: Any, source: str) -> None:
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{source}: not a CarbsSearcher state (no 'format': '{_FORMAT}')")
    if state.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{source}: CarbsSearcher state version {state.get('version')!r}, this carbs_like reads "
            f"version {FORMAT_VERSION}; use the carbs_like version that wrote it"
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}: not a CarbsSearcher state (not JSON: {e.msg} at line {e.lineno}); it may have "
            "been written by another searcher"
        ) from None


def _flat_items(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            items.extend(_flat_items(value, f"{prefix}{key}/"))
        else:
            items.append((f"{prefix}{key}", value))
    return items

