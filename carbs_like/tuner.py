"""The Tuner: the only stateful object. ask / tell / forget / add / save / load / resume.

The Tuner keeps the trials, observations and random generators; it translates configs through the
:class:`~carbs_like.space.SearchSpace` and leaves all mathematics to
:mod:`carbs_like.surrogate`, :mod:`carbs_like.acquisition` and :mod:`carbs_like.scaling`.

Every verb builds an *event* (a JSON object: ``ask``, ``tell``, ``add``, ``forget``, ``enqueue``),
writes it to the journal first when there is one (a failed write changes nothing), and then applies
it with ``_apply``, the one place where the state changes. ``Tuner.resume`` replays a journal through the
same ``_apply``, with the same checks (:mod:`carbs_like.records`) as ``Tuner.from_state_dict``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import journal as journal_store
from ._io import FormatError, check_header, read_json, require, require_int, write_json_atomic
from .acquisition import Geometry
from .frames import front_frame, observations_frame
from .records import (
    decode_config,
    decode_dynamic_state,
    decode_history,
    decode_observation,
    decode_queue,
    decode_settings,
    decode_space,
    decode_trial,
    encode_rng,
    encode_settings,
)
from .scaling import ScalingLaw
from .settings import TunerSettings
from .space import ChoiceParam, SearchSpace
from .strategy import Start, candidate_pool, next_config
from .threads import limited_threads
from .surrogate import Surrogate, fit_surrogate
from .trial import ObservedData, Observation, Trial, make_observation

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT_VERSION", "Tuner", "TunerSettings"]

FORMAT_VERSION = 1
FORMAT = "carbs_like.tuner"
_EVENTS = ("ask", "tell", "add", "forget", "enqueue")


class Tuner:
    """Cost-aware Bayesian search over a :class:`SearchSpace`; the loss is always minimised.

    Args:
        space: the search space.
        seed: seeds the tuner's own random generators (no global RNG is touched).
        settings: search settings; see :class:`TunerSettings`.
        path: if given, journal every event to this folder as it happens (see ``Tuner.resume``).
        target / target_cost: the scale (or compute) of the model you will train; shorthand for
            the ``TunerSettings`` fields of the same names.

    Example:
        >>> tuner = Tuner(space, seed=0)
        >>> trial = tuner.ask()
        >>> tuner.tell(trial, loss=2.71, cost=3.2e16)
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0, settings: TunerSettings | None = None,
                 path: str | os.PathLike | None = None, target: Mapping[str, float] | None = None,
                 target_cost: float | None = None) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"Tuner needs a SearchSpace, got {type(space).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if settings is not None and not isinstance(settings, TunerSettings):
            raise TypeError(f"settings must be a TunerSettings, got {type(settings).__name__}")
        self.space = space
        self.seed = int(seed)
        self.settings = settings or TunerSettings()
        if target is not None or target_cost is not None:
            self.settings = replace(self.settings, target=dict(target) if target is not None else None,
                                    target_cost=target_cost)
        # The target's search coordinates ({column: u}); a bad axis name fails here, named.
        self._target = space.scaling_coordinates(self.settings.target) if self.settings.target else None
        self._rng = np.random.default_rng(self.seed)
        self._sobol_seed = int(np.random.default_rng([self.seed, 1]).integers(2**31 - 1))
        self._sobol_drawn = 0
        self._next_id = 0
        self._trials: dict[int, Trial] = {}
        self._pending: dict[int, Trial] = {}
        self._observations: list[Observation] = []
        self._queue: list[dict[str, Any]] = []  # enqueued configs, asked before any suggestion
        self._X_rows: list[torch.Tensor] = []  # encoded config of each observation, in order
        self._hyper: dict[str, dict[str, list[float]]] | None = None
        self._n_at_fit = 0
        self._surrogate: tuple[int, Surrogate] | None = None  # (n observations, model), a cache
        blocks = [(space.columns(p.name).start, space.columns(p.name).stop)
                  for p in space.params if isinstance(p, ChoiceParam)]
        self._geometry = Geometry(limits=space.limits, choice_blocks=blocks, round=space.round, keys=space.keys)
        self._journal: journal_store.Journal | None = None
        if path is not None:
            self._journal = journal_store.Journal.create(path, self._identity())

    # ------------------------------------------------------------------ the verbs -----------
    @property
    def n_init(self) -> int:
        """Space-filling trials before the models take over."""
        return self.settings.n_init or max(6, len(self.space.params) + 2)

    def ask(self, *, refit: bool = True, candidates: Any = None) -> Trial:
        """Suggest the next trial. Parallel asks (before their tells) return distinct configs.

        Args:
            candidates: pool mode: choose among these configs only (a list of dicts or a
                DataFrame with a column per param), e.g. to replay which runs of a finished sweep
                the tuner would have picked. Each is validated; asked or observed ones are skipped.
            refit: re-optimise the GP hyperparameters when the settings call for it. False only
                conditions the GPs on new observations, with the current hyperparameters: much
                faster, for integrations that refit elsewhere (see ``refit_surrogate``).
        """
        if self._journal is not None:
            self._journal.check_open()  # fail before the work, not after
        with limited_threads(self.settings.threads):
            config, metadata = self._suggest(refit=refit, pool=candidate_pool(self.space, candidates))
        trial = Trial(id=self._next_id, config=config, metadata=metadata)
        state = {**self._dynamic_state(), "next_id": self._next_id + 1}
        self._commit({"event": "ask", "trial": trial.to_dict(), "state": state})
        return self._trials[trial.id]

    def tell(self, trial: Trial | int, *, loss: float | None, cost: float, failed: bool = False,
             metadata: Mapping[str, Any] | None = None) -> Observation:
        """Record the result of a pending trial.

        Args:
            trial: the :class:`Trial` from ``ask``, or its id.
            loss: the final loss; None (or NaN) if the run failed.
            cost: what the run cost, a positive number in any unit (seconds, FLOPs, ...).
            failed: the run diverged, ran out of memory, or otherwise produced no usable loss.
                A NaN or infinite loss is also recorded as a failure, with a warning.
            metadata: JSON-able extra data stored with the observation.

        Raises:
            KeyError: the trial id is unknown or not pending (already told or forgotten).
            TypeError / ValueError: a bad loss, cost or metadata; nothing is recorded.
        """
        trial_id = self._trial_id(trial)
        if trial_id not in self._pending:
            if trial_id in self._trials:
                raise KeyError(f"trial {trial_id} is not pending: it was already told or forgotten")
            raise KeyError(f"unknown trial id {trial_id!r}: ask() for a trial first, or add() a finished run")
        obs = make_observation(trial_id, self._pending[trial_id].config, loss, cost, failed, metadata)
        self._commit({"event": "tell", "observation": obs.to_dict()})
        return self._observations[-1]

    def forget(self, trial: Trial | int) -> None:
        """Drop a pending trial that will never report (it died for reasons unrelated to its config)."""
        trial_id = self._trial_id(trial)
        if trial_id not in self._pending:
            raise KeyError(f"trial {trial_id!r} is not pending, so there is nothing to forget")
        self._commit({"event": "forget", "trial_id": trial_id})

    def add(self, config: Mapping[str, Any], *, loss: float | None, cost: float, failed: bool = False,
            metadata: Mapping[str, Any] | None = None) -> Observation:
        """Import a finished run made elsewhere (e.g. an old sweep) without having asked for it.

        Raises:
            ValueError / TypeError: the config misses a param, has an unknown one or a value out of
                bounds (the message names it), or the loss/cost is bad. Nothing is recorded then.
        """
        config = self.space.validate(config)
        obs = make_observation(self._next_id, config, loss, cost, failed, metadata)
        trial = Trial(id=self._next_id, config=config, metadata={"source": "add"})
        self._commit({"event": "add", "trial": trial.to_dict(), "observation": obs.to_dict()})
        return self._observations[-1]

    def enqueue(self, config: Mapping[str, Any]) -> None:
        """Have the next ask return ``config`` (checked, integers rounded) instead of a suggestion,
        with metadata ``{"source": "enqueued"}``, as Optuna's ``enqueue_trial``; first in, first out.

        Raises:
            ValueError / TypeError: a bad config, as for ``add``; nothing is queued then.
        """
        self._commit({"event": "enqueue", "config": self.space.validate(config)})

    # ------------------------------------------------------------------ reading the state ---
    @property
    def queued(self) -> list[dict[str, Any]]:
        """Configs enqueued but not asked yet, in the order the asks will return them."""
        return [dict(c) for c in self._queue]

    @property
    def pending(self) -> list[Trial]:
        """Trials asked but not yet told or forgotten."""
        return list(self._pending.values())

    @property
    def trials(self) -> list[Trial]:
        """Every trial asked or added, in the order of their ids."""
        return list(self._trials.values())

    @property
    def observed(self) -> list[Observation]:
        """Every observation, in the order it was told or added (``observations()`` as records)."""
        return list(self._observations)

    @property
    def n_observations(self) -> int:
        return len(self._observations)

    def observations(self) -> "pd.DataFrame":
        """One row per observation: ``trial_id``, a column per param, ``loss``, ``cost``, ``status``."""
        return observations_frame(self._observations, self.space.names)

    def pareto_front(self) -> "pd.DataFrame":
        """The observations on the front of lower loss against lower cost, sorted by cost.

        Repeated runs of one config are grouped: their mean loss and cost, with ``n_runs``.
        """
        X = torch.stack(self._X_rows) if self._X_rows else torch.empty(0, self.space.dim, dtype=torch.float64)
        return front_frame(self.observations(), self.space.keys(X), self.space.names)

    def observed_data(self) -> ObservedData:
        """The observations the models are fitted to, as search-space tensors: all but lost runs."""
        obs = [o for o in self._observations if not o.lost]
        rows = [x for o, x in zip(self._observations, self._X_rows) if not o.lost]
        X = torch.stack(rows) if rows else torch.empty(0, self.space.dim, dtype=torch.float64)
        return ObservedData(
            X=X,
            loss=torch.tensor([math.nan if o.loss is None else o.loss for o in obs], dtype=torch.float64),
            cost=torch.tensor([o.cost for o in obs], dtype=torch.float64),
            failed=torch.tensor([o.failed for o in obs], dtype=torch.bool),
        )

    def scaling_law(self, **kwargs: Any) -> ScalingLaw:
        """Fit how the best value of each param moves along the scaling axes (see
        :meth:`ScalingLaw.fit`, which takes the keyword arguments)."""
        return ScalingLaw.fit(self, **kwargs)

    # ------------------------------------------------------------------ models --------------
    @property
    def in_initial_design(self) -> bool:
        """True while the next ask is a space-filling (Sobol) point, which needs no model."""
        n_ok = sum(not o.failed for o in self._observations)
        return len(self._observations) + len(self._pending) < self.n_init or n_ok < 2

    def needs_refit(self) -> bool:
        """Whether the observations have grown enough since the last hyperparameter fit that the
        settings call for a new one (``refit_always_below``, ``refit_growth``), past the start."""
        if self.in_initial_design:
            return False
        s = self.settings
        n_ok = sum(not o.failed for o in self._observations)
        if self._hyper is None:
            return True
        return n_ok != self._n_at_fit and (n_ok < s.refit_always_below or n_ok >= s.refit_growth * self._n_at_fit)

    def refit_surrogate(self, data: ObservedData) -> Surrogate:
        """Fit the surrogate on ``data``, re-optimising the GP hyperparameters; the tuner is unchanged.

        Together with ``use_surrogate`` this moves the slow part of an ask elsewhere: take
        ``data = tuner.observed_data()`` under your lock, call this outside it (e.g. in a background
        thread), then ``use_surrogate`` under the lock again, and ``ask(refit=False)`` stays fast.
        """
        with limited_threads(self.settings.threads):
            return self._fit(data, refit=True)

    def use_surrogate(self, surrogate: Surrogate, data: ObservedData) -> None:
        """Adopt a surrogate from ``refit_surrogate(data)``: its hyperparameters become the tuner's.

        It also serves the next asks if no observation arrived since ``data`` was taken.
        """
        self._hyper = surrogate.hyperparameters
        self._n_at_fit = int(data.ok.sum())
        self._surrogate = (len(data), surrogate) if len(data) == len(self.observed_data()) else None

    # ------------------------------------------------------------------ persistence ---------
    def state_dict(self) -> dict[str, Any]:
        """The whole state as JSON-able data (what ``save`` writes)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **self._identity(),
            "rng": encode_rng(self._rng),
            "sobol": {"seed": self._sobol_seed, "drawn": self._sobol_drawn},
            "next_id": self._next_id,
            "trials": [t.to_dict() for t in self._trials.values()],
            "pending": list(self._pending),
            "queue": self.queued,
            "observations": [o.to_dict() for o in self._observations],
            "model": {"hyperparameters": self._hyper, "n_at_fit": self._n_at_fit},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state as versioned JSON, atomically (a crash leaves the old file or the new)."""
        return write_json_atomic(path, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tuner":
        """Load a tuner saved with ``save``. Its next ``ask()`` equals the original's.

        Raises:
            ValueError: the file is not valid JSON, not a checkpoint, of another version, or has a
                missing or malformed field (the message names it).
        """
        return cls.from_state_dict(read_json(path, format=FORMAT, version=FORMAT_VERSION, what="checkpoint"),
                                   source=str(path))

    @classmethod
    def from_state_dict(cls, data: Any, *, source: str = "checkpoint") -> "Tuner":
        """Rebuild a tuner from ``state_dict()`` data, checking the format, version and every field.

        Raises:
            ValueError: a wrong format or version, or a missing or malformed field (named).
        """
        check_header(data, format=FORMAT, version=FORMAT_VERSION, where=source, what="checkpoint")
        tuner = cls._from_identity(data, source)
        sobol = require(data, "sobol", dict, source)
        model = require(data, "model", dict, source)
        tuner._sobol_seed = require_int(sobol, "seed", f"{source}: field 'sobol'")
        tuner._set_dynamic_state(decode_dynamic_state({
            "rng": data.get("rng"), "sobol_drawn": sobol.get("drawn"), "next_id": data.get("next_id"),
            "hyperparameters": model.get("hyperparameters"), "n_at_fit": model.get("n_at_fit"),
        }, source))
        trials, observations, pending = decode_history(data, tuner.space, tuner._next_id, source)
        tuner._trials = {t.id: t for t in trials}
        for obs in observations:
            tuner._store(obs)
        tuner._pending = {i: tuner._trials[i] for i in pending}
        tuner._queue = decode_queue(data, tuner.space, source)
        return tuner

    @classmethod
    def resume(cls, path: str | os.PathLike) -> "Tuner":
        """Rebuild the exact state of a journaled tuner (``Tuner(space, path=...)``) after a crash or
        kill, and keep journaling to the same folder. ``path`` may also be an experiment folder of
        the ``carbs-like`` command (``runs/NAME``, whose journal is ``runs/NAME/journal``).

        The observations are those told before the crash; trials that were pending are in
        ``tuner.pending`` (tell them, or ``forget`` them and ask again); the next ``ask()`` is the
        one the uninterrupted tuner would have made. A torn last line (a crash mid-write) is
        ignored with a warning and cut off.

        Raises:
            FileNotFoundError: ``path`` holds no journal.
            JournalLockedError: another tuner has the journal open (the message names it).
            JournalError: the journal is corrupt before its last line, or of another version
                (the message names the line and field).
        """
        journal, records = journal_store.Journal.open(path)
        try:
            tuner = cls._replay(records, journal.file)
        except BaseException:
            journal.close()
            raise
        tuner._journal = journal
        return tuner

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Tuner":
        """A read-only copy of a journaled tuner: the state its journal holds now, also while
        another process is writing it (for status views, reports, exports). It journals nothing;
        use ``Tuner.resume`` to continue the search.

        Raises:
            FileNotFoundError, JournalError: as ``Tuner.resume``.
        """
        folder = journal_store.locate(path)
        return cls._replay(journal_store.read(folder), folder / journal_store.JOURNAL_FILE)

    @classmethod
    def repair(cls, path: str | os.PathLike) -> tuple[int, int, Path | None]:
        """Cut a corrupt journal back to its longest valid prefix of events, after backing the
        whole file up beside it. Nothing valid is lost: the events after the first bad line stay in
        the backup (and can be re-run or re-added).

        Returns:
            ``(events kept, lines dropped, backup path)``; no backup and nothing dropped when the
            journal was valid.

        Raises:
            FileNotFoundError: no journal at ``path``.
            JournalError: even the header is unreadable (nothing to keep: start a new search).
            JournalLockedError: another tuner has the journal open.
        """
        folder = journal_store.locate(path)
        records, _, _ = journal_store.read_lines(folder)
        total = len((folder / journal_store.JOURNAL_FILE).read_bytes().rstrip(b"\n").split(b"\n"))
        if not records:
            raise journal_store.JournalError(f"{folder / journal_store.JOURNAL_FILE}: line 1 (the header) is "
                                             "unreadable; nothing can be kept: start a new search")
        keep = 1
        try:
            tuner = cls._replay(records[:1], folder / journal_store.JOURNAL_FILE)
            for lineno, record in records[1:]:
                tuner._apply(record, where=f"line {lineno}")
                keep += 1
        except FormatError:
            pass
        if keep == total:
            return keep - 1, 0, None
        backup = journal_store.cut(folder, keep)
        return keep - 1, total - keep, backup

    def close(self) -> None:
        """Stop journaling and release the journal's lock (a no-op without a journal).

        The tuner can still be inspected; further ask/tell/add/forget raise. Also called on
        ``with Tuner(...) as tuner:`` exit and at interpreter exit.
        """
        if self._journal is not None:
            self._journal.close()

    def __enter__(self) -> "Tuner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events --------------
    def _commit(self, record: dict[str, Any]) -> None:
        """Journal an event (first: a failed write changes nothing), then apply it."""
        if self._journal is not None:
            self._journal.append(record)
        self._apply(record, where=f"{record['event']} event")

    def _apply(self, record: Mapping[str, Any], *, where: str) -> None:
        """Change the state by one event: the only place that does, live and on replay."""
        event = record.get("event")
        if event == "ask":
            trial = decode_trial(require(record, "trial", dict, where), self.space, f"{where}: field 'trial'")
            if trial.id in self._trials:
                raise FormatError(f"{where}: field 'trial.id': trial {trial.id} appears twice")
            state = decode_dynamic_state(require(record, "state", dict, where), f"{where}: field 'state'")
            if state["next_id"] <= trial.id:
                raise FormatError(f"{where}: field 'state.next_id' ({state['next_id']}) must exceed trial id {trial.id}")
            if trial.metadata.get("source") == "enqueued":
                if not self._queue or self._queue[0] != trial.config:
                    raise FormatError(f"{where}: field 'trial.config' is not the next enqueued config")
                self._queue.pop(0)
            self._set_dynamic_state(state)
            self._trials[trial.id] = self._pending[trial.id] = trial
        elif event == "tell":
            obs = decode_observation(require(record, "observation", dict, where), self.space, f"{where}: 'observation'")
            trial = self._pending.get(obs.trial_id)
            if trial is None:
                raise FormatError(f"{where}: field 'observation.trial_id': trial {obs.trial_id} is not pending there")
            if obs.config != trial.config:
                raise FormatError(f"{where}: field 'observation.config' differs from trial {obs.trial_id}'s config")
            del self._pending[obs.trial_id]
            self._store(obs)
        elif event == "add":
            trial = decode_trial(require(record, "trial", dict, where), self.space, f"{where}: field 'trial'")
            obs = decode_observation(require(record, "observation", dict, where), self.space, f"{where}: 'observation'")
            if trial.id != self._next_id or obs.trial_id != trial.id or obs.config != trial.config:
                raise FormatError(
                    f"{where}: field 'trial.id' / 'observation': expected trial {self._next_id} with the same "
                    f"config in both, got trial {trial.id} and observation of {obs.trial_id}"
                )
            self._trials[trial.id] = trial
            self._next_id += 1
            self._store(obs)
        elif event == "forget":
            trial_id = require_int(record, "trial_id", where)
            if trial_id not in self._pending:
                raise FormatError(f"{where}: field 'trial_id': trial {trial_id} is not pending there")
            del self._pending[trial_id]
        elif event == "enqueue":
            self._queue.append(decode_config(record, self.space, where))
        else:
            raise FormatError(f"{where}: field 'event' must be one of {list(_EVENTS)}, got {event!r}")

    @classmethod
    def _replay(cls, records: list[journal_store.Record], file: Path) -> "Tuner":
        """A tuner rebuilt from a journal's lines (header first), without a journal of its own."""
        lineno, header = records[0]
        try:
            tuner = cls._from_identity(header, f"{file}, line {lineno} (header)")
            for lineno, record in records[1:]:
                tuner._apply(record, where=f"{file}, line {lineno} ({record.get('event')} event)")
        except journal_store.JournalError:
            raise
        except FormatError as e:
            raise journal_store.JournalError(str(e)) from None
        return tuner

    def _identity(self) -> dict[str, Any]:
        """What makes this search this search: its space, settings and seed (journal header, snapshot)."""
        return {"space": self.space.to_dict(), "settings": encode_settings(self.settings), "seed": self.seed}

    @classmethod
    def _from_identity(cls, data: Mapping[str, Any], where: str) -> "Tuner":
        return cls(decode_space(data, where), seed=require_int(data, "seed", where),
                   settings=decode_settings(data, where))

    def _dynamic_state(self) -> dict[str, Any]:
        """What an ask changes besides the trials: the RNG, the Sobol position, the next id and the
        GP hyperparameters. The journal records it with every ask, so replay needs no fitting."""
        return {"rng": encode_rng(self._rng), "sobol_drawn": self._sobol_drawn, "next_id": self._next_id,
                "hyperparameters": self._hyper, "n_at_fit": self._n_at_fit}

    def _set_dynamic_state(self, state: Mapping[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._sobol_drawn = state["sobol_drawn"]
        self._next_id = state["next_id"]
        if state["hyperparameters"] != self._hyper:
            self._surrogate = None  # the cached models were fitted with other hyperparameters
        self._hyper = state["hyperparameters"]
        self._n_at_fit = state["n_at_fit"]

    def _trial_id(self, trial: Trial | int) -> int:
        if isinstance(trial, Trial):
            return trial.id
        if isinstance(trial, bool) or not isinstance(trial, numbers.Integral):
            raise TypeError(f"expected a Trial or an int trial id, got {trial!r}")
        return int(trial)

    def _store(self, obs: Observation) -> None:
        self._observations.append(obs)
        self._X_rows.append(self.space.to_search([obs.config])[0])

    # ------------------------------------------------------------------ choosing ------------
    def _fit(self, data: ObservedData, *, refit: bool) -> Surrogate:
        """Fit the models to ``data`` from the tuner's current hyperparameters (no state change)."""
        s = self.settings
        return fit_surrogate(data, scaling_columns=self.space.scaling_columns, hyperparameters=self._hyper,
                             refit=refit, max_fit_points=s.max_fit_points, maxiter=s.fit_maxiter,
                             seed=self.seed * 1_000_003 + len(data))

    def _fitted(self, data: ObservedData, *, refit: bool = True) -> Surrogate:
        """The surrogate for the current observations (cached until the next tell/add).

        ``refit=False`` never re-optimises hyperparameters the tuner already has.
        """
        n = len(data)
        if self._surrogate is not None and self._surrogate[0] == n:
            return self._surrogate[1]
        refit = self._hyper is None or (refit and self.needs_refit())
        surrogate = self._fit(data, refit=refit)
        if refit:
            self._n_at_fit = int(data.ok.sum())
        self._hyper = surrogate.hyperparameters
        self._surrogate = (n, surrogate)
        return surrogate

    def _suggest(self, *, refit: bool = True, pool: torch.Tensor | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next config and the metadata saying how it was chosen (see :mod:`carbs_like.strategy`)."""
        if self._queue:
            return dict(self._queue[0]), {"source": "enqueued"}
        data = self.observed_data()
        start = Start(self._sobol_seed, self._sobol_drawn)
        choice = next_config(
            self.space, self.settings, data, [t.config for t in self._pending.values()],
            fitted=None if self.in_initial_design else lambda: self._fitted(data, refit=refit),
            rng=self._rng, start=start, geometry=self._geometry,
            rerun_ready=int(data.ok.sum()) >= 2 * self.n_init, trial_id=self._next_id, seed=self.seed,
            pool=pool, target=self._target,
        )
        self._sobol_drawn = start.drawn
        if choice.repeat_of is not None:
            return dict(self._observations[choice.repeat_of].config), {
                "source": "rerun", "repeat_of": self._observations[choice.repeat_of].trial_id}
        return choice.config, choice.metadata
