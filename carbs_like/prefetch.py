"""The ask-ahead engine: trials asked before they are needed, so a dispatcher never waits for a fit.

A dispatcher (Ray Tune's driver loop, the local process pool of the ``carbs-like`` command) must
hand out a trial the moment a slot frees up, but an ask refits Gaussian processes (tenths of a
second to seconds). :class:`Prefetcher` keeps a queue of trials asked ahead, and a background
thread that:

1. tells the tuner the results that arrived (they wait in an inbox, so ``tell`` never blocks);
2. asks trials into the ready queue while it holds fewer than the target, with the current GP
   hyperparameters (conditioning on new data and the acquisition only: fast);
3. re-optimises the hyperparameters when the observations call for it (``Tuner.needs_refit``),
   *outside* the tuner's lock, at most a third of the thread's time, so asks keep up with fast
   trials; new results still enter the GPs exactly in between;
4. re-asks a ready trial once the observations have grown since it was asked by the tuner's
   ``refit_growth`` (10 % by default; at least one more): one more result among many moves the
   posterior little, and with slow trials every result would otherwise cost one ask of CPU that
   the trainers share (the demo asked 109 trials for 60 runs that way).

So :meth:`take` only pops a trial (microseconds), or returns None while none is ready. With
``background=False`` everything happens inline instead (deterministic, slow: tests, debugging).

No Ray import: :class:`carbs_like.ray.CarbsSearcher` and the CLI's local backend both use it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .trial import Observation, Trial
from .tuner import Tuner

__all__ = ["Prefetcher", "is_stale"]

logger = logging.getLogger(__name__)

# The worker threads alive, and the flag that ends them at interpreter exit (see _stop_workers).
_WORKERS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()
_STOPPING = threading.Event()

# Wait this many times the last refit's duration before the next one: refits take at most a third
# of the worker's time, the rest goes to asks.
REFIT_SHARE = 2.0


class Prefetcher:
    """Asks a :class:`Tuner` ahead in a background thread; see the module docstring.

    Args:
        tuner: the tuner. While the prefetcher runs, reach it only through :meth:`locked` or the
            verbs here (:meth:`tell`, :meth:`add`, :meth:`forget`).
        target: how many trials to keep ready, a number or a function called each time (it may
            return 0 to stop asking, e.g. when a trial limit is near).
        background: run a worker thread (the default); False does all work inline in :meth:`take`.
        on_add: called with ``(tag, trial id)`` when a queued :meth:`add` is applied.
    """

    def __init__(self, tuner: Tuner, *, target: int | Callable[[], int] = 2, background: bool = True,
                 on_add: Callable[[Any, int], None] | None = None) -> None:
        self._tuner = tuner
        self._target = target
        self.background = background
        self._on_add = on_add
        self._tuner_lock = threading.RLock()  # guards the tuner; held during asks (not refits)
        self._book_lock = threading.RLock()  # guards the queues; held only briefly
        self._inbox: deque[dict[str, Any]] = deque()  # tells, adds and forgets not yet applied
        self._ready: deque[Trial] = deque()  # asked ahead, pending in the tuner, not handed out
        self._asked_at: dict[int, int] = {}  # observations the tuner had when each ready trial was asked
        self._finished = False
        self._snapshot = tuner.state_dict()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._refit_s = self._refit_end = 0.0  # how long the last refit took, when it ended

    # ------------------------------------------------------------------ handing out --------
    def take(self) -> Trial | None:
        """A ready trial (pending in the tuner), or None if none is ready yet: ask again soon."""
        self.raise_if_failed()
        if not self.background:
            self.work_once()
        elif not self._ready:
            self._ask_inline_if_cheap()
        with self._book_lock:
            trial = self._ready.popleft() if self._ready else None
        self.wake()
        return trial

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ready trial; True if one is ready."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.raise_if_failed()
            if self._ready:
                return True
            time.sleep(0.005)
        return bool(self._ready)

    @property
    def n_ready(self) -> int:
        with self._book_lock:
            return len(self._ready)

    # ------------------------------------------------------------------ results ------------
    def tell(self, trial_id: int, *, loss: float | None, cost: float, failed: bool = False,
             metadata: Mapping[str, Any] | None = None) -> None:
        """Queue a tell; it reaches the tuner in the background (at once without one)."""
        self._queue({"op": "tell", "tuner_id": trial_id, "loss": loss, "cost": cost, "failed": failed,
                     "metadata": dict(metadata or {})})

    def add(self, config: Mapping[str, Any], *, loss: float | None, cost: float, failed: bool = False,
            metadata: Mapping[str, Any] | None = None, tag: Any = None) -> None:
        """Queue an ``add`` of a run the tuner never asked for; ``on_add(tag, id)`` follows."""
        self._queue({"op": "add", "config": dict(config), "loss": loss, "cost": cost, "failed": failed,
                     "metadata": dict(metadata or {}), "tag": tag})

    def forget(self, trial_id: int) -> None:
        """Queue a forget of a pending trial."""
        self._queue({"op": "forget", "tuner_id": trial_id})

    def finish(self) -> None:
        """Stop asking for good: the trials asked ahead are forgotten."""
        with self._book_lock:
            self._finished = True
            while self._ready:
                self._inbox.append({"op": "forget", "tuner_id": self._ready.popleft().id})
        self.wake()

    @property
    def finished(self) -> bool:
        return self._finished

    def flush(self) -> Tuner:
        """Apply every queued result now (waits for a running ask) and return the tuner."""
        with self._tuner_lock:
            self._apply_inbox()
        return self._tuner

    @contextlib.contextmanager
    def locked(self) -> Iterator[Tuner]:
        """The tuner, with every queued result applied, locked against the worker."""
        with self._tuner_lock:
            self._apply_inbox()
            yield self._tuner

    def queued(self) -> list[dict[str, Any]]:
        """The results not yet applied (copies), oldest first."""
        with self._book_lock:
            return [dict(op) for op in self._inbox]

    def records(self) -> list[tuple[float, float | None, bool, dict[str, Any]]]:
        """``(cost, loss, failed, metadata)`` of every observation, told or still queued, without
        waiting for the worker."""
        with self._book_lock:
            queued = [op for op in self._inbox if op["op"] != "forget"]
        told = [(o.cost, o.loss, o.failed, o.metadata) for o in self._tuner.observed]
        return told + [(op["cost"], op["loss"], op["failed"], op["metadata"]) for op in queued]

    # ------------------------------------------------------------------ persistence --------
    def snapshot(self) -> dict[str, Any]:
        """The tuner's latest ``state_dict()``, without waiting for the worker."""
        with self._book_lock:
            return self._snapshot

    def state(self) -> dict[str, Any]:
        """The tuner's ``state_dict()`` and the queues, as JSON data (see :meth:`restore`). Queued
        results are applied first when the worker is idle."""
        if self._tuner_lock.acquire(blocking=False):
            try:
                self._apply_inbox(force_snapshot=True)
            finally:
                self._tuner_lock.release()
        with self._book_lock:
            return {"tuner": self._snapshot, "inbox": [dict(op) for op in self._inbox],
                    "ready": [t.id for t in self._ready], "finished": self._finished}

    def restore(self, *, inbox: list[dict[str, Any]], ready: list[int], finished: bool) -> None:
        """Put back the queues saved by :meth:`state` (ready ids must be pending in the tuner)."""
        with self._tuner_lock, self._book_lock:
            pending = {t.id: t for t in self._tuner.pending}
            self._inbox = deque(dict(op) for op in inbox)
            self._ready = deque(pending[i] for i in ready if i in pending)
            self._finished = bool(finished)

    # ------------------------------------------------------------------ the worker ---------
    def wake(self) -> None:
        """Make sure the worker runs (started on first use, ends with its prefetcher)."""
        if not self.background:
            return
        if self._worker is None or not self._worker.is_alive():
            if self._error is not None or _STOPPING.is_set():
                return
            self._worker = threading.Thread(target=_worker_main, args=(weakref.ref(self),),
                                            name="carbs_like-prefetch", daemon=True)
            _WORKERS.add(self._worker)
            self._worker.start()
        self._wake.set()

    def raise_if_failed(self) -> None:
        """Raise the worker's error, if it had one."""
        if self._error is not None:
            raise RuntimeError("carbs_like: the ask-ahead thread failed (see the cause below)") from self._error

    def work_once(self) -> bool:
        """One step of the worker; True if it did something (more may be waiting).

        In order: tell what arrived; ask a trial ahead if fewer than the target are ready; refit
        the GP hyperparameters when new observations call for it, outside the tuner lock; re-ask
        a ready trial the observations have outgrown (:func:`is_stale`). Inline (no background)
        it only tells and asks, refitting the usual way inside the ask.
        """
        if not self.background:
            with self._tuner_lock:
                self._apply_inbox()
                if self._wants_ask(min(1, self._ready_target())):
                    self._ask_ahead(stale=None, refit=True)
                    return True
            return False
        with self._tuner_lock:
            self._apply_inbox()
            if self._wants_ask(self._ready_target()):
                self._ask_ahead(stale=None, refit=False)
                return True
            data = self._tuner.observed_data() if self._wants_refit() else None
        if data is not None:
            started = time.monotonic()
            surrogate = self._tuner.refit_surrogate(data)  # the slow part, outside the lock
            self._refit_s, self._refit_end = time.monotonic() - started, time.monotonic()
            with self._tuner_lock:
                self._tuner.use_surrogate(surrogate, data)
                with self._book_lock:
                    self._snapshot = self._tuner.state_dict()
            return True
        with self._tuner_lock:
            stale = self._stale_ready()
            if stale is None:
                return False
            self._ask_ahead(stale=stale, refit=False)
            return True

    # ------------------------------------------------------------------ internals ----------
    def _queue(self, op: dict[str, Any]) -> None:
        self.raise_if_failed()
        with self._book_lock:
            self._inbox.append(op)
        if not self.background:
            self.flush()
        self.wake()

    def _ready_target(self) -> int:
        target = self._target() if callable(self._target) else self._target
        return max(0, int(target))

    def _wants_ask(self, target: int) -> bool:
        with self._book_lock:
            return not self._finished and len(self._ready) < target

    def _wants_refit(self) -> bool:
        """New observations call for new hyperparameters, and the last refit is long enough ago."""
        if not self._tuner.needs_refit():
            return False
        return time.monotonic() - self._refit_end >= REFIT_SHARE * self._refit_s

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
            self._asked_at[trial.id] = self._tuner.n_observations
            self._snapshot = self._tuner.state_dict()

    def _ask_inline_if_cheap(self) -> None:
        """Ask in the caller when no model is needed yet (space-filling trials take milliseconds)."""
        if not self._tuner_lock.acquire(blocking=False):
            return
        try:
            if self._tuner.in_initial_design and self._wants_ask(min(1, self._ready_target())):
                self._ask_ahead(stale=None, refit=False)
        finally:
            self._tuner_lock.release()

    def _stale_ready(self) -> Trial | None:
        """A ready trial the observations have outgrown (see :func:`is_stale`; not a space-filling one)."""
        n, growth = self._tuner.n_observations, self._tuner.settings.refit_growth
        with self._book_lock:
            for trial in self._ready:
                if is_stale(self._asked_at.get(trial.id, n), n, growth) and trial.metadata.get("source") != "sobol":
                    return trial
        return None

    def _apply_inbox(self, *, force_snapshot: bool = False) -> None:
        """Tell the tuner what the inbox holds. Caller holds the tuner lock."""
        with self._book_lock:
            ops = list(self._inbox)
        if not ops and not force_snapshot:
            return
        added: list[tuple[Any, Observation]] = []
        for op in ops:
            if op["op"] == "forget":
                self._tuner.forget(op["tuner_id"])
                continue
            kwargs = dict(loss=op["loss"], cost=op["cost"], failed=op["failed"], metadata=op["metadata"])
            if op["op"] == "tell":
                self._tuner.tell(op["tuner_id"], **kwargs)
            else:
                added.append((op.get("tag"), self._tuner.add(op["config"], **kwargs)))
        with self._book_lock:
            for _ in ops:
                self._inbox.popleft()
            self._snapshot = self._tuner.state_dict()
        if self._on_add is not None:  # outside the book lock: the callback may take locks of its own
            for tag, obs in added:
                self._on_add(tag, obs.trial_id)


def is_stale(asked_with: int, observations: int, growth: float) -> bool:
    """Whether a trial asked with ``asked_with`` observations is worth asking again now that there
    are ``observations``: they have grown by the factor ``growth``, and by at least one."""
    return observations - asked_with >= max(1.0, (growth - 1.0) * asked_with) - 1e-9


def _worker_main(ref: "weakref.ReferenceType[Prefetcher]") -> None:
    """The background thread: works while there is work, sleeps until woken, ends with its prefetcher."""
    while not _STOPPING.is_set():
        engine = ref()
        if engine is None:
            return
        wake = engine._wake
        wake.clear()
        try:
            busy = engine.work_once()
        except BaseException as e:  # handed to the caller: the next call raises it
            engine._error = e
            logger.error("carbs_like ask-ahead thread failed", exc_info=e)
            return
        del engine
        if not busy:
            wake.wait(timeout=1.0)


@atexit.register
def _stop_workers() -> None:
    """At interpreter exit, let each worker finish the step it is in and end. Python kills daemon
    threads after the exit handlers, and one killed inside torch's C++ code aborts the process
    (exit status 134 after a run that succeeded)."""
    _STOPPING.set()
    for worker in list(_WORKERS):
        worker.join(timeout=60)
