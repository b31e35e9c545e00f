"""The Tuner: the only stateful object. ask / tell / forget / add / save / load.

The Tuner keeps the trials, observations and random generators; it translates configs through the
:class:`~carbs_like.space.SearchSpace` and leaves all mathematics to
:mod:`carbs_like.surrogate` and :mod:`carbs_like.acquisition`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .acquisition import Geometry, NumericalFault, band_position, pareto_mask, suggest
from .space import ChoiceParam, SearchSpace
from .surrogate import ObservedData, Surrogate, fit_surrogate
from .trial import Observation, Trial

if TYPE_CHECKING:
    import pandas as pd

    from .scaling import ScalingLaw

__all__ = ["FORMAT_VERSION", "Tuner", "TunerSettings"]

FORMAT_VERSION = 1
_FORMAT = "carbs_like.tuner"


@dataclass(frozen=True)
class TunerSettings:
    """How the tuner searches. Frozen and self-validating; the defaults suit most searches.

    Attributes:
        n_init: space-filling Sobol trials before the models take over (default ``max(8, 2 d)``).
        n_candidates: candidates scored per ask.
        sobol_fraction: share of candidates drawn over the whole box rather than around the front.
        cost_band: width of each ask's cost band, as a fraction of the predicted log-cost range
            (1 turns the bands off: every ask may go anywhere along the front).
        max_suggestion_cost: never suggest a config whose predicted cost exceeds this.
        rerun_probability: chance that an ask re-runs a front point (noisy fronts).
        max_repeats: at most this many runs of one config.
        refit_growth: refit GP hyperparameters once the observations have grown by this factor
            since the last fit (always below ``refit_always_below`` observations); in between the
            GPs are only conditioned on the new data.
        refit_always_below: refit on every new observation while there are fewer than this.
        max_fit_points: fit hyperparameters on at most this many observations.
        fit_maxiter: L-BFGS-B iterations per hyperparameter fit.
    """

    n_init: int | None = None
    n_candidates: int = 2000
    sobol_fraction: float = 0.2
    cost_band: float = 0.1
    max_suggestion_cost: float | None = None
    rerun_probability: float = 0.05
    max_repeats: int = 2
    refit_growth: float = 1.1
    refit_always_below: int = 64
    max_fit_points: int = 256
    fit_maxiter: int = 75

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, want: str) -> None:
            if not ok:
                raise ValueError(f"TunerSettings.{name}={getattr(self, name)!r}: must be {want}")

        check("n_init", self.n_init is None or (isinstance(self.n_init, int) and self.n_init >= 1), "an int >= 1 or None")
        check("n_candidates", isinstance(self.n_candidates, int) and self.n_candidates >= 10, "an int >= 10")
        check("sobol_fraction", 0.0 <= self.sobol_fraction <= 1.0, "in [0, 1]")
        check("cost_band", 0.0 < self.cost_band <= 1.0, "in (0, 1]")
        check(
            "max_suggestion_cost",
            self.max_suggestion_cost is None or (self.max_suggestion_cost > 0 and math.isfinite(self.max_suggestion_cost)),
            "a positive finite number or None",
        )
        check("rerun_probability", 0.0 <= self.rerun_probability <= 1.0, "in [0, 1]")
        check("max_repeats", isinstance(self.max_repeats, int) and self.max_repeats >= 1, "an int >= 1")
        check("refit_growth", self.refit_growth >= 1.0, ">= 1")
        check(
            "refit_always_below",
            isinstance(self.refit_always_below, int) and self.refit_always_below >= 0,
            "an int >= 0",
        )
        check("max_fit_points", isinstance(self.max_fit_points, int) and self.max_fit_points >= 8, "an int >= 8")
        check("fit_maxiter", isinstance(self.fit_maxiter, int) and self.fit_maxiter >= 1, "an int >= 1")


class Tuner:
    """Cost-aware Bayesian search over a :class:`SearchSpace`; the loss is always minimised.

    Args:
        space: the search space.
        seed: seeds the tuner's own random generators (no global RNG is touched).
        settings: search settings; see :class:`TunerSettings`.
        path: if given, journal every event to this folder as it happens (see ``Tuner.resume``).

    Example:
        >>> tuner = Tuner(space, seed=0)
        >>> trial = tuner.ask()
        >>> tuner.tell(trial, loss=2.71, cost=3.2e16)
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        settings: TunerSettings | None = None,
        path: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"Tuner needs a SearchSpace, got {type(space).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.space = space
        self.seed = int(seed)
        self.settings = settings or TunerSettings()
        self._rng = np.random.default_rng(self.seed)
        self._sobol_seed = int(np.random.default_rng([self.seed, 1]).integers(2**31 - 1))
        self._sobol_drawn = 0
        self._next_id = 0
        self._trials: dict[int, Trial] = {}
        self._pending: dict[int, Trial] = {}
        self._observations: list[Observation] = []
        self._X_rows: list[torch.Tensor] = []  # encoded config of each observation, in order
        self._hyper: dict[str, dict[str, list[float]]] | None = None
        self._n_at_fit = 0
        self._surrogate: tuple[int, Surrogate] | None = None  # (n observations, model), a cache
        self._geometry = Geometry(
            limits=space.limits,
            nominal=torch.stack([torch.zeros(space.dim), torch.ones(space.dim)]).to(torch.float64),
            choice_blocks=[
                (space.columns(p.name).start, space.columns(p.name).stop)
                for p in space.params
                if isinstance(p, ChoiceParam)
            ],
            round=space.round,
            keys=space.keys,
        )
        self._journal = None
        if path is not None:
            from .journal import Journal

            self._journal = Journal.create(path, self)

    # ------------------------------------------------------------------ public API ----------
    @property
    def n_init(self) -> int:
        return self.settings.n_init or max(8, 2 * self.space.dim)

    def ask(self, *, refit: bool = True) -> Trial:
        """Suggest the next trial. Parallel asks (before their tells) return distinct configs.

        Args:
            refit: re-optimise the GP hyperparameters when the settings call for it. False only
                conditions the GPs on new observations, with the current hyperparameters: much
                faster, for integrations that refit elsewhere (see ``refit_surrogate``).
        """
        if self._journal is not None:
            self._journal.check_open()  # fail before the work, not after
        trial = self._new_trial(*self._suggest(refit=refit))
        self._pending[trial.id] = trial
        self._record("ask", trial=trial.to_dict())
        return trial

    def tell(
        self,
        trial: Trial | int,
        *,
        loss: float | None,
        cost: float,
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Record the result of a pending trial.

        Args:
            trial: the :class:`Trial` from ``ask``, or its id.
            loss: the final loss; may be None (or NaN) if the run failed.
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
        obs = self._observation(trial_id, self._pending[trial_id].config, loss, cost, failed, metadata)
        self._record("tell", observation=obs.to_dict())  # journal first: a failed write changes nothing
        del self._pending[trial_id]
        self._store(obs)
        return obs

    def forget(self, trial: Trial | int) -> None:
        """Drop a pending trial that will never report (it died for reasons unrelated to its config)."""
        trial_id = self._trial_id(trial)
        if trial_id not in self._pending:
            raise KeyError(f"trial {trial_id!r} is not pending, so there is nothing to forget")
        self._record("forget", trial_id=trial_id)
        del self._pending[trial_id]

    def add(
        self,
        config: Mapping[str, Any],
        *,
        loss: float | None,
        cost: float,
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Import a finished run made elsewhere (e.g. an old sweep) without having asked for it.

        Raises:
            ValueError / TypeError: the config misses a param, has an unknown one or a value out of
                bounds (the message names it), or the loss/cost is bad. Nothing is recorded then.
        """
        config = self.space.validate(config)
        obs = self._observation(self._next_id, config, loss, cost, failed, metadata)
        trial = Trial(id=self._next_id, config=config, metadata={"source": "add"})
        self._record("add", trial=trial.to_dict(), observation=obs.to_dict())
        self._next_id += 1
        self._trials[trial.id] = trial
        self._store(obs)
        return obs

    @property
    def pending(self) -> list[Trial]:
        """Trials asked but not yet told or forgotten."""
        return list(self._pending.values())

    def observations(self) -> "pd.DataFrame":
        """One row per observation: ``trial_id``, a column per param, ``loss``, ``cost``, ``status``."""
        import pandas as pd

        cols = ["trial_id", *self.space.names, "loss", "cost", "status"]
        rows = [
            {"trial_id": o.trial_id, **o.config, "loss": o.loss, "cost": o.cost, "status": o.status}
            for o in self._observations
        ]
        df = pd.DataFrame(rows, columns=cols)
        df["loss"] = df["loss"].astype(float)
        df["cost"] = df["cost"].astype(float)
        return df

    def pareto_front(self) -> "pd.DataFrame":
        """The observations on the front of lower loss against lower cost, sorted by cost.

        Repeated runs of one config are grouped: their mean loss and cost, with ``n_runs``.
        """
        import pandas as pd

        df = self.observations()
        ok = df[df["status"] == "ok"]
        if ok.empty:
            return pd.DataFrame(columns=[*df.columns, "n_runs"])
        keys = self.space.keys(torch.stack([self._X_rows[i] for i in ok.index]))
        ok = ok.assign(_key=keys)
        grouped = ok.groupby("_key", sort=False).agg(
            {**{c: "first" for c in ["trial_id", *self.space.names, "status"]}, "loss": "mean", "cost": "mean"}
        )
        grouped["n_runs"] = ok.groupby("_key", sort=False).size()
        grouped = grouped.reset_index(drop=True)
        mask = pareto_mask(torch.tensor(grouped["loss"].values), torch.tensor(grouped["cost"].values))
        front = grouped[mask.numpy()].sort_values(["cost", "loss"]).reset_index(drop=True)
        return front[["trial_id", *self.space.names, "loss", "cost", "status", "n_runs"]]

    def scaling_law(self) -> "ScalingLaw":
        """Fit how the best value of each param moves along the scaling axes (see ScalingLaw)."""
        from .scaling import ScalingLaw

        return ScalingLaw.fit(self)

    def refit_surrogate(self, data: ObservedData) -> Surrogate:
        """Fit the surrogate on ``data``, re-optimising the GP hyperparameters; the tuner is unchanged.

        Together with ``use_surrogate`` this moves the slow part of an ask elsewhere: take
        ``data = tuner._data()`` under your lock, call this outside it (e.g. in a background
        thread), then ``use_surrogate`` under the lock again, and ``ask(refit=False)`` stays fast.
        """
        return self._fit(data, refit=True)

    def _fit(self, data: ObservedData, *, refit: bool) -> Surrogate:
        """Fit the models to ``data`` from the tuner's current hyperparameters (no state change)."""
        s = self.settings
        return fit_surrogate(
            data,
            scaling_columns=self.space.scaling_columns,
            hyperparameters=self._hyper,
            refit=refit,
            max_fit_points=s.max_fit_points,
            maxiter=s.fit_maxiter,
            seed=self.seed * 1_000_003 + len(data),
        )

    def use_surrogate(self, surrogate: Surrogate, data: ObservedData) -> None:
        """Adopt a surrogate from ``refit_surrogate(data)``: its hyperparameters become the tuner's.

        It also serves the next asks if no observation arrived since ``data`` was taken.
        """
        self._hyper = surrogate.hyperparameters
        self._n_at_fit = int(data.ok.sum())
        self._surrogate = (len(data), surrogate) if len(data) == len(self._observations) else None

    # ------------------------------------------------------------------ persistence ---------
    def state_dict(self) -> dict[str, Any]:
        """The whole state as JSON-able data (what ``save`` writes)."""
        return {
            "format": _FORMAT,
            "version": FORMAT_VERSION,
            "space": self.space.to_dict(),
            "settings": asdict(self.settings),
            "seed": self.seed,
            "rng": _jsonable_rng(self._rng),
            "sobol": {"seed": self._sobol_seed, "drawn": self._sobol_drawn},
            "next_id": self._next_id,
            "trials": [t.to_dict() for t in self._trials.values()],
            "pending": list(self._pending),
            "observations": [o.to_dict() for o in self._observations],
            "model": {"hyperparameters": self._hyper, "n_at_fit": self._n_at_fit},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state as versioned JSON, atomically (a crash leaves the old file or the new)."""
        path = Path(path)
        write_json_atomic(path, self.state_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tuner":
        """Load a tuner saved with ``save``. Its next ``ask()`` equals the original's.

        Raises:
            ValueError: the file is not valid JSON, not a checkpoint, of another version, or has a
                missing or malformed field (the message names it).
        """
        from .journal import loads

        path = Path(path)
        try:
            data = loads(path.read_bytes().decode("utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid checkpoint (corrupt JSON at line {e.lineno}: {e.msg})") from None
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid checkpoint ({e})") from None
        return cls.from_state_dict(data, source=str(path))

    @classmethod
    def from_state_dict(cls, data: Any, *, source: str = "checkpoint") -> "Tuner":
        """Rebuild a tuner from ``state_dict()`` data, checking the format, version and every field.

        Raises:
            ValueError: a wrong format or version, or a missing or malformed field (named).
        """
        from . import journal as j

        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{source}: not a carbs_like tuner checkpoint (no 'format': '{_FORMAT}')")
        j.check_version(data.get("version"), FORMAT_VERSION, where=source, what="checkpoint")
        tuner = cls(
            j.decode_space(data, source), seed=j.require_int(data, "seed", source),
            settings=j.decode_settings(data, source),
        )
        sobol = j.require(data, "sobol", dict, source)
        model = j.require(data, "model", dict, source)
        tuner._sobol_seed = j.require_int(sobol, "seed", f"{source}: field 'sobol'")
        state = {
            "rng": data.get("rng"), "sobol_drawn": sobol.get("drawn"), "next_id": data.get("next_id"),
            "hyperparameters": model.get("hyperparameters"), "n_at_fit": model.get("n_at_fit"),
        }
        j.set_dynamic_state(tuner, state, where=source)
        for i, t in enumerate(j.require(data, "trials", list, source)):
            trial = j.decode_trial(t, tuner.space, f"{source}: trials[{i}]")
            if trial.id in tuner._trials or trial.id >= tuner._next_id:
                raise j.JournalError(f"{source}: trials[{i}]: id {trial.id} is repeated or not below next_id")
            tuner._trials[trial.id] = trial
        observed: set[int] = set()
        for i, o in enumerate(j.require(data, "observations", list, source)):
            obs = j.decode_observation(o, tuner, f"{source}: observations[{i}]")
            if obs.trial_id not in tuner._trials or obs.trial_id in observed:
                raise j.JournalError(f"{source}: observations[{i}]: trial_id {obs.trial_id} is not in 'trials' or repeated")
            observed.add(obs.trial_id)
            tuner._store(obs)
        for i, trial_id in enumerate(j.require(data, "pending", list, source)):
            is_id = isinstance(trial_id, int) and not isinstance(trial_id, bool)
            if not is_id or trial_id not in tuner._trials or trial_id in observed or trial_id in tuner._pending:
                raise j.JournalError(f"{source}: pending[{i}]: {trial_id!r} is not the id of an unobserved trial")
            tuner._pending[trial_id] = tuner._trials[trial_id]
        return tuner

    @classmethod
    def resume(cls, path: str | os.PathLike) -> "Tuner":
        """Rebuild the exact state of a journaled tuner (``Tuner(space, path=...)``) after a crash or
        kill, and keep journaling to the same folder.

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
        from .journal import resume

        return resume(path, cls)

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

    # ------------------------------------------------------------------ internals -----------
    def _record(self, event: str, **payload: Any) -> None:
        if self._journal is not None:
            self._journal.append(event, self, **payload)

    def _dynamic_state(self) -> dict[str, Any]:
        """What an ask changes besides the trials: the RNG, the Sobol position, the next id and the
        GP hyperparameters. The journal records it with every ask, so replay needs no fitting."""
        return {
            "rng": _jsonable_rng(self._rng),
            "sobol_drawn": self._sobol_drawn,
            "next_id": self._next_id,
            "hyperparameters": self._hyper,
            "n_at_fit": self._n_at_fit,
        }

    def _restore_dynamic_state(
        self, *, rng: dict[str, Any], sobol_drawn: int, next_id: int,
        hyperparameters: dict[str, dict[str, list[float]]] | None, n_at_fit: int,
    ) -> None:
        self._rng.bit_generator.state = rng
        self._sobol_drawn = sobol_drawn
        self._next_id = next_id
        self._hyper = hyperparameters
        self._n_at_fit = n_at_fit
        self._surrogate = None

    def _trial_id(self, trial: Trial | int) -> int:
        if isinstance(trial, Trial):
            return trial.id
        if isinstance(trial, bool) or not isinstance(trial, numbers.Integral):
            raise TypeError(f"expected a Trial or an int trial id, got {trial!r}")
        return int(trial)

    def _observation(self, trial_id, config, loss, cost, failed, metadata) -> Observation:
        if not isinstance(failed, (bool, np.bool_)):
            raise TypeError(f"failed must be True or False, got {failed!r}")
        failed = bool(failed)
        if isinstance(cost, bool) or not isinstance(cost, numbers.Real):
            raise TypeError(f"cost must be a positive number, got {cost!r} ({type(cost).__name__})")
        cost = float(cost)
        if not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"cost must be a positive finite number, got {cost!r} (report e.g. seconds or FLOPs)")
        if loss is None:
            if not failed:
                raise TypeError("loss is None but failed=False: pass the loss, or failed=True for a run that failed")
        elif isinstance(loss, bool) or not isinstance(loss, numbers.Real):
            raise TypeError(f"loss must be a number (or None for a failed run), got {loss!r} ({type(loss).__name__})")
        else:
            loss = float(loss)
            if not math.isfinite(loss):
                if not failed:
                    warnings.warn(
                        f"trial {trial_id}: loss is {loss}; recorded as a failed run (diverged)",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                failed, loss = True, None
        meta = dict(metadata or {})
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata must be JSON data (str, numbers, lists, dicts): {e}") from None
        if failed:
            loss = None
        return Observation(trial_id=trial_id, config=dict(config), loss=loss, cost=cost, failed=failed, metadata=meta)

    def _store(self, obs: Observation) -> None:
        self._observations.append(obs)
        self._X_rows.append(self.space.to_search([obs.config])[0])

    def _new_trial(self, config: dict[str, Any], metadata: dict[str, Any]) -> Trial:
        trial = Trial(id=self._next_id, config=config, metadata=metadata)
        self._next_id += 1
        self._trials[trial.id] = trial
        return trial

    def _data(self) -> ObservedData:
        obs = self._observations
        X = torch.stack(self._X_rows) if obs else torch.empty(0, self.space.dim, dtype=torch.float64)
        return ObservedData(
            X=X,
            loss=torch.tensor([math.nan if o.loss is None else o.loss for o in obs], dtype=torch.float64),
            cost=torch.tensor([o.cost for o in obs], dtype=torch.float64),
            failed=torch.tensor([o.failed for o in obs], dtype=torch.bool),
        )

    def _fitted(self, data: ObservedData, *, refit: bool = True) -> Surrogate:
        """The surrogate for the current observations (cached until the next tell/add).

        ``refit=False`` never re-optimises hyperparameters the tuner already has.
        """
        n = len(data)
        if self._surrogate is not None and self._surrogate[0] == n:
            return self._surrogate[1]
        s = self.settings
        n_ok = int(data.ok.sum())
        refit = self._hyper is None or (refit and (
            n_ok != self._n_at_fit and (n_ok < s.refit_always_below or n_ok >= s.refit_growth * self._n_at_fit)
        ))
        surrogate = self._fit(data, refit=refit)
        if refit:
            self._n_at_fit = n_ok
        self._hyper = surrogate.hyperparameters
        self._surrogate = (n, surrogate)
        return surrogate

    def _suggest(self, *, refit: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next config and the metadata saying how it was chosen."""
        data = self._data()
        pending = list(self._pending.values())
        X_pending = (
            self.space.to_search([t.config for t in pending]) if pending
            else torch.empty(0, self.space.dim, dtype=torch.float64)
        )
        exclude = set(self.space.keys(torch.cat([data.X, X_pending]))) if len(data) + len(pending) else set()

        if len(data) + len(pending) < self.n_init or int(data.ok.sum()) < 2:
            return self._sobol_config(exclude), {"source": "sobol"}

        surrogate = self._fitted(data, refit=refit)
        meta: dict[str, Any] = {}
        if surrogate.notes:
            meta["model_notes"] = list(surrogate.notes)
            for note in surrogate.notes:
                warnings.warn(f"carbs_like: {note}", RuntimeWarning, stacklevel=3)

        rerun = self._maybe_rerun(data, exclude_pending=set(self.space.keys(X_pending)) if pending else set())
        if rerun is not None:
            return rerun

        generator = torch.Generator().manual_seed(int(self._rng.integers(2**62)))
        cap = self.settings.max_suggestion_cost
        try:
            sug = suggest(
                surrogate,
                data,
                X_pending,
                geometry=self._geometry,
                exclude=exclude,
                generator=generator,
                n_candidates=self.settings.n_candidates,
                sobol_fraction=self.settings.sobol_fraction,
                max_log_cost=math.log(cap) if cap is not None else None,
                band_width=self.settings.cost_band,
                band_position=band_position(self._next_id, seed=self.seed),
            )
        except NumericalFault as e:
            # The one fallback to a space-filling point: only for this fault, and reported.
            warnings.warn(f"carbs_like: {e}; asked a Sobol point instead", RuntimeWarning, stacklevel=3)
            return self._sobol_config(exclude), {**meta, "source": "sobol", "fallback": str(e)}
        config = self.space.to_configs(sug.x)[0]
        predictions = {
            "predicted_loss": sug.predicted_loss,
            "predicted_cost": sug.predicted_cost,
            "p_success": sug.p_success,
        }
        # JSON (journal, save) has no inf/NaN: an overflowing prediction (exp of a huge log cost) is None.
        meta.update(source="acquisition")
        meta.update({k: v if v is None or math.isfinite(v) else None for k, v in predictions.items()})
        if sug.note:
            meta["note"] = sug.note
            warnings.warn(f"carbs_like: {sug.note}", RuntimeWarning, stacklevel=3)
        return config, meta

    def _sobol_config(self, exclude: set) -> dict[str, Any]:
        for _ in range(1000):
            U = self.space.sobol(1, seed=self._sobol_seed, skip=self._sobol_drawn)
            self._sobol_drawn += 1
            if self.space.keys(U)[0] not in exclude:
                return self.space.to_configs(U)[0]
        raise RuntimeError("1000 Sobol points in a row repeat observed configs: the space is too small to search")

    def _maybe_rerun(self, data: ObservedData, *, exclude_pending: set) -> tuple[dict, dict] | None:
        """Occasionally re-run a front point, so a lucky seed does not define the front."""
        p = self.settings.rerun_probability
        if p <= 0 or int(data.ok.sum()) < 2 * self.n_init or self._rng.random() >= p:
            return None
        ok = torch.nonzero(data.ok).squeeze(-1)
        keys = self.space.keys(data.X[ok])
        counts: dict[tuple, int] = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        on_front = pareto_mask(data.loss[ok], data.cost[ok])
        options = [
            int(ok[i]) for i in torch.nonzero(on_front).squeeze(-1).tolist()
            if counts[keys[i]] < self.settings.max_repeats and keys[i] not in exclude_pending
        ]
        if not options:
            return None
        i = options[int(self._rng.integers(len(options)))]
        obs = self._observations[i]
        return dict(obs.config), {"source": "rerun", "repeat_of": obs.trial_id}


def _jsonable_rng(rng: np.random.Generator) -> dict[str, Any]:
    return json.loads(json.dumps(rng.bit_generator.state))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a temp file in the same folder, fsync, rename,
    fsync the folder (so the rename itself survives a power cut)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
