"""The Ray Tune searcher: :class:`CarbsSearcher` proposes trials from a carbs_like :class:`Tuner`.

How it fits Tune's loop:

* Tune calls ``suggest`` in its single-threaded driver loop, so the searcher never fits a model
  there: the ask-ahead engine (:class:`carbs_like.prefetch.Prefetcher`) keeps ``n_ready`` trials
  asked in a background thread, and results go into its inbox, so no driver call waits for a fit.
  ``suggest`` only hands a trial out, or returns None (Tune asks again on its next step) while the
  first model is being fitted.
* Ray trial ids (str) map to tuner trial ids (int). A trial the searcher never handed out (Tune
  restarts an errored trial under a new id) is recovered from the config in its results and
  imported with ``Tuner.add`` when it ends.
* ``save``/``restore`` (and so Tune's experiment checkpoints and ``tune.Tuner.restore``) write and
  read versioned JSON: the tuner's ``state_dict()``, the id mapping, the inbox, the budgets.
  Pickling the searcher (Tune cloudpickles it into the experiment) stores the same JSON data.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.sample import Domain

from .._io import FormatError, check_header, read_json, require, require_int, write_json_atomic
from ..prefetch import Prefetcher
from ..settings import TunerSettings
from ..space import SearchSpace
from ..tuner import Tuner
from .trials import LiveTrial, catch_up, config_from_result, flat_items

__all__ = ["CarbsSearcher"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 3: the tuner's journal folder ("journal"); 2 is read as having none
FORMAT = "carbs_like.ray.searcher"

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
        path: journal every tuner event to this folder (``Tuner(space, path=...)``), e.g. beside the
            experiment (``storage_path/name/journal``). It travels with the searcher's checkpoints, so
            ``tune.Tuner.restore`` continues it (a trial it told is never told again); ``Tuner.read``,
            ``Tuner.resume`` and ``carbs-like status`` read it.

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
        path: str | os.PathLike | None = None,
    ) -> None:
        if isinstance(space, Tuner) and path is not None:
            raise ValueError("pass path= with a SearchSpace; a Tuner you pass keeps its own journal (if any)")
        if isinstance(space, Tuner):
            tuner = space
        elif isinstance(space, SearchSpace):
            tuner = Tuner(space, seed=seed, settings=settings, path=path)
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
        self._cost = cost
        self._max_trials = max_trials
        self._max_cost = max_cost
        self._max_concurrent = max_concurrent
        self._resources = resources
        self._n_ready = n_ready
        self._background = background
        self._path = None if path is None else str(path)
        self._start(tuner)

    # ------------------------------------------------------------------ public -------------
    @property
    def tuner(self) -> Tuner:
        """The :class:`Tuner` inside, with every reported result told.

        Read it freely; change it (``add``, ``tell``) only while Tune is not running.
        """
        return self._engine.flush()

    @property
    def concurrency(self) -> dict[str, int | None]:
        """``{"running": trials running, "limit": max_concurrent (None: none), "ready": asked ahead}``."""
        with self._book_lock:
            return {"running": len(self._live), "limit": self._max_concurrent, "ready": self._engine.n_ready}

    @property
    def cost_metric(self) -> str:
        """The name of the reported cost."""
        return self._cost

    @property
    def trial_ids(self) -> dict[str, int | None]:
        """Ray trial id -> tuner trial id of every trial seen (None: running, not suggested here)."""
        self._engine.flush()
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

    def is_running(self, trial_id: str) -> bool:
        """Whether a Ray trial is running (handed out or adopted, and not ended)."""
        with self._book_lock:
            return trial_id in self._live

    def resources_of(self, trial_id: str) -> Mapping[str, float] | None:
        """The resources of a running Ray trial, if known."""
        with self._book_lock:
            live = self._live.get(trial_id)
            return None if live is None else self._resources_of(live)

    def loss_of(self, value: float) -> float:
        """A reported metric value as the loss the tuner minimises (negated for ``mode="max"``)."""
        return -value if self._mode == "max" else value

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
        state = _read_state(files[-1])
        self = cls.__new__(cls)
        self.__setstate__(dict(state, _callable_resources=None, _source=str(files[-1])))
        return self

    # ------------------------------------------------------------------ Searcher API -------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take ``metric``/``mode`` from ``tune.TuneConfig``; refuse search domains in ``param_space``."""
        if metric:
            self._metric = metric
        if mode:
            _check_mode(mode)
            self._mode = mode
        for key, value in flat_items(config or {}):
            if isinstance(value, Domain):
                raise ValueError(
                    f"param_space['{key}'] is a Tune search domain ({type(value).__name__}); the "
                    "CarbsSearcher searches its SearchSpace: put the param there, keep only constants "
                    "in param_space"
                )
            if key in self._space_names:
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
        self._engine.raise_if_failed()
        with self._book_lock:
            finished = self._engine.finished or self._budget_spent()
            if not finished and self._max_concurrent is not None and len(self._live) >= self._max_concurrent:
                return None
        if finished:
            self._engine.finish()
            return Searcher.FINISHED
        trial = self._engine.take()
        if trial is None:
            return None
        with self._book_lock:
            live = LiveTrial(tuner_id=trial.id, config=dict(trial.config))
            live.resources = self._resources_of(live)
            self._live[trial_id] = live
            self._n_suggested += 1
        return dict(trial.config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Follow a running trial's results (its last loss and cost are kept for its end)."""
        self._engine.raise_if_failed()
        with self._book_lock:
            if trial_id in self._done and trial_id not in self._live:
                # Only a trial Tune resumed after its error (resume_errored=True) reports again: a
                # new run of its config, added when it ends; the failure stays recorded.
                logger.info("CarbsSearcher: Ray trial %s resumed after its error: a new run", trial_id)
                del self._done[trial_id]
            live = self._live_or_adopt(trial_id, result)
            if live is not None:
                live.update(result, metric=self._metric, cost=self._cost)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record how a trial ended: a loss, a failure (``error``), or nothing if it never ran."""
        self._engine.raise_if_failed()
        with self._book_lock:
            if trial_id in self._done:
                return
            live = self._live_or_adopt(trial_id, result)
            if live is None:
                return
            del self._live[trial_id]
            if result:
                live.update(result, metric=self._metric, cost=self._cost)
            op = self._settle(trial_id, live, error=error, ran=bool(result) or error)
        if op is not None:
            self._send(op)

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list | None = None) -> None:
        raise NotImplementedError(
            "CarbsSearcher needs a cost for every observation: use searcher.tuner.add(config, "
            "loss=..., cost=...) before tune.Tuner.fit()"
        )

    # ------------------------------------------------------------------ for the scheduler --
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

    def mark_failure(self, trial_id: str, kind: str) -> None:
        """The scheduler saw this trial fail: ``"node"`` (its node died or is unreachable) or ``"error"``
        (the trainable raised). If Tune does not retry it, a node failure is a *lost* run: failed,
        charged the cost it burned, ``metadata["failure"] = "node"``, out of the models (``Observation.lost``)."""
        if kind not in ("node", "error"):
            raise ValueError(f"kind={kind!r}: must be 'node' or 'error'")
        with self._book_lock:
            if trial_id in self._live:
                self._live[trial_id].failure = kind

    def front(self) -> list[tuple[float, float]]:
        """``(cost, loss)`` of finished, untruncated, successful trials (losses as minimised)."""
        return [
            (float(cost), float(loss)) for cost, loss, failed, meta in self._engine.records()
            if not failed and loss is not None and not meta.get("truncated", False)
        ]

    def close(self) -> None:
        """Release the tuner's journal (a no-op without ``path``): another searcher, or
        ``Tuner.resume``, may then continue it in this process. The searcher can still be read."""
        self._engine.flush().close()

    # ------------------------------------------------------------------ persistence --------
    def save(self, checkpoint_path: str) -> None:
        """Write the whole state as versioned JSON (Tune calls this; the file name ends in .pkl)."""
        write_json_atomic(Path(checkpoint_path), self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by ``save``: the same search continues."""
        self.set_state(_read_state(Path(checkpoint_path)), source=checkpoint_path)

    def get_state(self) -> dict[str, Any]:
        """The whole state as JSON data: the tuner's ``state_dict()``, ids, queues, budgets."""
        engine = self._engine.state()
        with self._book_lock:
            return {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "tuner": engine["tuner"],
                "metric": self._metric,
                "mode": self._mode,
                "cost": self._cost,
                "max_trials": self._max_trials,
                "max_cost": self._max_cost,
                "max_concurrent": self._max_concurrent,
                "resources": dict(self._resources) if isinstance(self._resources, Mapping) else None,
                "n_ready": self._n_ready,
                "background": self._background,
                "journal": self._path,
                "inbox": engine["inbox"],
                "ready": engine["ready"],
                "finished": engine["finished"],
                "live": {rid: t.to_dict() for rid, t in self._live.items()},
                "done": dict(self._done),
                "n_suggested": self._n_suggested,
                "spent": self._spent,
            }

    def set_state(self, state: dict[str, Any], *, source: str = "searcher state", open_journal: bool = True) -> None:
        """Replace the state by one from ``get_state`` (checks the format, version and fields).

        With a journal (``path``) the tuner is resumed from it and the book brought up to it (it may be
        ahead of the checkpoint: :func:`trials.catch_up`); ``open_journal=False`` leaves it alone."""
        if isinstance(state, dict) and state.get("format") == FORMAT and state.get("version") == 2:
            state = {**state, "version": FORMAT_VERSION, "journal": None}
        check_header(state, format=FORMAT, version=FORMAT_VERSION, where=source, what="CarbsSearcher state")
        saved = Tuner.from_state_dict(require(state, "tuner", dict, source), source=f"{source}: tuner")
        self._path = _optional(state, "journal", str, source)
        tuner = saved
        if self._path is not None and open_journal:
            if hasattr(self, "_engine"):
                self.close()  # this searcher's own journal, reopened below
            tuner = Tuner.resume(self._path)
        mode = require(state, "mode", str, source)
        _check_mode(mode)
        self._metric, self._mode = require(state, "metric", str, source), mode
        self._cost = require(state, "cost", str, source)
        self._max_trials = _optional(state, "max_trials", int, source)
        self._max_cost = _optional(state, "max_cost", (int, float), source)
        self._max_concurrent = _optional(state, "max_concurrent", int, source)
        self._n_ready = _optional(state, "n_ready", int, source)
        resources = _optional(state, "resources", dict, source)
        if resources is not None or not callable(self._resources):
            self._resources = resources
        self._start(tuner)
        try:
            live = {rid: LiveTrial.from_dict(t) for rid, t in require(state, "live", dict, source).items()}
        except (TypeError, ValueError, KeyError) as e:
            raise FormatError(f"{source}: field 'live': {e}") from None
        inbox, ready = require(state, "inbox", list, source), require(state, "ready", list, source)
        done = dict(require(state, "done", dict, source))
        n_suggested = require_int(state, "n_suggested", source)
        spent = float(require(state, "spent", (int, float), source))
        if tuner is not saved:
            caught = catch_up(journaled=tuner.observed, saved=saved.observed, pending=tuner.pending,
                              live=live, inbox=inbox)
            live, inbox, ready = caught.live, caught.inbox, caught.ready
            done.update(caught.done)
            n_suggested, spent = n_suggested + caught.suggested, spent + caught.spent
        self._engine.restore(inbox=inbox, ready=ready, finished=bool(require(state, "finished", bool, source)))
        with self._book_lock:
            self._live, self._done, self._n_suggested, self._spent = live, done, n_suggested, spent

    def __getstate__(self) -> dict[str, Any]:
        # Tune cloudpickles the searcher into its experiment: store JSON data, never the tuner object.
        state = self.get_state()
        state["_callable_resources"] = self._resources if callable(self._resources) else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        Searcher.__init__(self, metric=state["metric"], mode=state["mode"])
        self._resources = state.pop("_callable_resources", None)
        self._background = bool(state["background"])
        # An unpickled copy (Tune's experiment file, from_experiment) never takes the journal; Tune's
        # restore_from_dir (``restore``) does.
        self.set_state(state, source=state.pop("_source", "pickled CarbsSearcher"), open_journal=False)

    # ------------------------------------------------------------------ internals ----------
    def _start(self, tuner: Tuner) -> None:
        """The runtime parts, made fresh on unpickling: the book, its lock and the ask-ahead engine."""
        self._book_lock = threading.RLock()  # guards the book below; a leaf lock, held briefly
        self._live: dict[str, LiveTrial] = {}
        self._done: dict[str, int | None] = {}
        self._n_suggested = 0
        self._spent = 0.0
        self._space = tuner.space
        self._space_names = list(tuner.space.names)
        self._engine = Prefetcher(tuner, target=self._ready_wanted, background=self._background,
                                  on_add=self._added)

    def _ready_wanted(self) -> int:
        """Trials the engine keeps ready: ``n_ready`` (default half the concurrency, at least 2),
        never more than the trials left to suggest."""
        n = self._n_ready if self._n_ready is not None else max(2, (self._max_concurrent or 0) // 2)
        if self._max_trials is not None:
            with self._book_lock:
                n = min(n, self._max_trials - self._n_suggested)
        return n

    def _added(self, ray_trial_id: Any, tuner_id: int) -> None:
        with self._book_lock:
            self._done[ray_trial_id] = tuner_id

    def _resources_of(self, live: LiveTrial) -> Mapping[str, float] | None:
        if live.resources is not None:
            return live.resources
        if callable(self._resources):
            return dict(self._resources(dict(live.config)))
        return self._resources

    def _budget_spent(self) -> bool:
        if self._max_trials is not None and self._n_suggested >= self._max_trials:
            return True
        return self._max_cost is not None and self.spent >= self._max_cost

    def _live_or_adopt(self, trial_id: str, result: Mapping[str, Any] | None) -> LiveTrial | None:
        """The live record of a Ray trial; a trial never handed out is adopted from its result."""
        live = self._live.get(trial_id)
        if live is not None or trial_id in self._done or not result:
            return live
        config = config_from_result(result, self._space_names)
        if config is None:
            warnings.warn(
                f"CarbsSearcher: Ray trial {trial_id} was not suggested by this searcher and its "
                f"results carry no config for {self._space_names}; it is not recorded",
                RuntimeWarning, stacklevel=3,
            )
            return None
        try:
            config = self._space.validate(config)
        except (TypeError, ValueError) as e:
            warnings.warn(f"CarbsSearcher: Ray trial {trial_id} is not recorded: {e}", RuntimeWarning, stacklevel=3)
            return None
        live = LiveTrial(tuner_id=None, config=config)
        self._live[trial_id] = live
        return live

    def _settle(self, trial_id: str, live: LiveTrial, *, error: bool, ran: bool) -> dict[str, Any] | None:
        """Book a trial that ended; the tell (or add, or forget) to send. Caller holds the book lock."""
        self._done[trial_id] = live.tuner_id
        if not ran:
            if live.loss is None and live.cost is None:
                # Tune stopped it before it ran (pending when the experiment ended): nothing seen.
                return None if live.tuner_id is None else {"op": "forget", "tuner_id": live.tuner_id}
            live.truncated = True  # stopped while paused: it did not run to its end
        cost, source = live.spent(self._resources_of(live))
        loss = None if live.loss is None else self.loss_of(live.loss)
        meta: dict[str, Any] = {"ray_trial_id": trial_id, "cost_source": source}
        failed = error or loss is None or not math.isfinite(loss)
        if error:
            meta["reason"] = "error"
            if live.failure == "node":  # the node died, not the config: see mark_failure
                meta.update(reason="node failure", failure="node")
        elif loss is None:
            meta["reason"] = f"no '{self._metric}' reported"
            logger.warning("CarbsSearcher: trial %s reported no '%s'; recorded as failed", trial_id, self._metric)
        elif not math.isfinite(loss):
            meta["reason"] = "non-finite loss"
        if live.truncated and not failed:
            meta["truncated"] = True
        self._spent += cost
        return {"op": "tell" if live.tuner_id is not None else "add", "tuner_id": live.tuner_id,
                "config": live.config, "loss": None if failed else loss, "cost": cost, "failed": failed,
                "metadata": meta, "tag": trial_id}

    def _send(self, op: dict[str, Any]) -> None:
        """Hand a settled trial to the engine (outside the book lock: inline, it applies at once)."""
        if op["op"] == "forget":
            self._engine.forget(op["tuner_id"])
        elif op["op"] == "tell":
            self._engine.tell(op["tuner_id"], loss=op["loss"], cost=op["cost"], failed=op["failed"],
                              metadata=op["metadata"])
        else:
            self._engine.add(op["config"], loss=op["loss"], cost=op["cost"], failed=op["failed"],
                             metadata=op["metadata"], tag=op["tag"])


# ---------------------------------------------------------------------- helpers --------------
def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r}: must be 'min' or 'max'")


def _check_optional_int(name: str, value: Any, least: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise ValueError(f"{name}={value!r}: must be an int >= {least} or None")


def _optional(state: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in state:
        raise FormatError(f"{where}: missing field {key!r}")
    return None if state[key] is None else require(state, key, kind, where)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return read_json(path, format=FORMAT, version=FORMAT_VERSION, what="CarbsSearcher state")
    except FormatError as e:
        try:  # version 2 (no journal) is read too, see set_state
            return read_json(path, format=FORMAT, version=2, what="CarbsSearcher state")
        except FormatError:
            raise FormatError(f"{e}; it may have been written by another searcher") from None

