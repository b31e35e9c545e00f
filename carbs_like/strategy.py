"""What to ask next: the space-filling start, a rerun of a front point, or the acquisition.

The :class:`~carbs_like.tuner.Tuner` owns the state (random generators, observations, pending
trials) and passes it in; this module decides, and changes nothing but the generators it is given
and the Sobol position in ``start``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .acquisition import Geometry, NumericalFault, rerun_informative, rerun_options, suggest
from .scaling.design import missing_scales, target_gain
from .settings import TunerSettings
from .space import SearchSpace
from .surrogate import Surrogate
from .target import cost_target, target_suggest
from .trial import ObservedData

__all__ = ["Choice", "Start", "candidate_pool", "next_config", "turn_of"]

# Turns of successive asks follow a golden-ratio (Weyl) sequence, the most even cover of [0, 1)
# by a sequence that never knows how long it will run; each seed offsets it by seed x 1/rho
# (rho the plastic number), so neighbouring seeds' offsets are far apart.
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
SEED_OFFSET = 0.7548776662466927


def turn_of(k: int, *, seed: int, settings: TunerSettings, has_target: bool) -> str:
    """What ask ``k`` improves: ``"target"`` (what the proposal at the target needs; a
    ``target_share`` of the asks when there is a target), ``"best_loss"`` (the front's expensive
    end; ``best_loss_share`` of the rest) or ``"front"``; the shares are spread evenly over asks."""
    t = ((seed * SEED_OFFSET) % 1.0 + k * GOLDEN) % 1.0
    if has_target:
        if t < settings.target_share:
            return "target"
        t = (t - settings.target_share) / max(1.0 - settings.target_share, 1e-12)
    return "best_loss" if t < settings.best_loss_share else "front"


@dataclass
class Start:
    """The scrambled Sobol sequence of the start design: its seed and how many points were drawn."""

    seed: int
    drawn: int = 0

    def draw(self, space: SearchSpace, exclude: set, pool: Tensor | None = None) -> dict[str, Any]:
        """The next Sobol point whose config was not observed or asked yet; with a ``pool``, the
        nearest pool point to it that is fresh."""
        for _ in range(1000):
            U = space.sobol(1, seed=self.seed, skip=self.drawn)
            self.drawn += 1
            if pool is not None:
                fresh = [i for i, k in enumerate(space.keys(pool)) if k not in exclude]
                if not fresh:
                    raise RuntimeError("every candidate of the pool was asked or observed already")
                near = fresh[int(torch.cdist(U, pool[fresh]).argmin())]
                return space.to_configs(pool[near : near + 1])[0]
            if space.keys(U)[0] not in exclude:
                return space.to_configs(U)[0]
        raise RuntimeError("1000 Sobol points in a row repeat observed configs: the space is too small to search")


def candidate_pool(space: SearchSpace, candidates: Any) -> Tensor | None:
    """Pool mode's candidates (a list of configs, or a DataFrame with a column per param),
    validated, as rounded search coordinates; None stays None (the whole space)."""
    if candidates is None:
        return None
    rows = candidates.to_dict("records") if hasattr(candidates, "to_dict") else list(candidates)
    if not rows:
        raise ValueError("ask(candidates=...) got no candidates; pass None to search the whole space")
    configs = [space.validate({k: r[k] for k in space.names if k in r}) for r in rows]
    return space.round(space.to_search(configs))


@dataclass
class Choice:
    """A config to ask, or (``repeat_of``) the index of an observation to run again."""

    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    repeat_of: int | None = None


def next_config(
    space: SearchSpace,
    settings: TunerSettings,
    data: ObservedData,
    pending: Sequence[Mapping[str, Any]],
    *,
    fitted: Callable[[], Surrogate] | None,
    rng: np.random.Generator,
    start: Start,
    geometry: Geometry,
    rerun_ready: bool,
    trial_id: int,
    seed: int,
    pool: Tensor | None = None,
    target: Mapping[int, float] | None = None,
) -> Choice:
    """Choose the next trial.

    Args:
        fitted: returns the surrogate for ``data``; None while in the start design.
        pool: `n x d` search coordinates to choose among (pool mode), or None for the whole space.
        target: ``{column: coordinate}`` of the target scale, when the user gave one.
        rerun_ready: enough observations that re-running a front point may be worth it; it is
            only done when the loss GP's fitted noise says a rerun is informative.
    """
    X_pending = space.to_search(list(pending)) if pending else torch.empty(0, space.dim, dtype=torch.float64)
    exclude = set(space.keys(torch.cat([data.X, X_pending]))) if len(data) + len(pending) else set()
    if fitted is None:
        return Choice(start.draw(space, exclude, pool), {"source": "sobol"})

    surrogate = fitted()
    meta: dict[str, Any] = {}
    if surrogate.notes:
        meta["model_notes"] = list(surrogate.notes)
        for note in surrogate.notes:
            warnings.warn(f"carbs_like: {note}", RuntimeWarning, stacklevel=4)

    p = settings.rerun_probability
    if rerun_ready and p > 0 and pool is None and rerun_informative(surrogate, data, space.keys(data.X)) and rng.random() < p:
        pending_keys = set(space.keys(X_pending)) if pending else set()
        options = rerun_options(data, space.keys(data.X), max_repeats=settings.max_repeats, exclude=pending_keys)
        if options:
            return Choice(repeat_of=options[int(rng.integers(len(options)))])

    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    cap = settings.max_suggestion_cost
    turn = turn_of(trial_id, seed=seed, settings=settings,
                   has_target=target is not None or settings.target_cost is not None)
    if turn == "target" and target is None:
        target = cost_target(surrogate, data, space.scaling_columns, settings.target_cost)
    common = dict(geometry=geometry, exclude=exclude, generator=generator, n_candidates=settings.n_candidates,
                  sobol_fraction=settings.sobol_fraction, max_log_cost=math.log(cap) if cap is not None else None,
                  pool=pool)
    try:
        if turn == "target":
            gain = target_gain(space, data, X_pending, target, seed=seed) if settings.target_design == "law" else None
            sug = target_suggest(surrogate, data, X_pending, target=target, gain=gain,
                                 new_scale=missing_scales(space, data) > 0, **common)
        else:
            sug = suggest(surrogate, data, X_pending, best_loss_only=turn == "best_loss", **common)
    except NumericalFault as e:
        # The one fallback to a space-filling point: only for this fault, and reported.
        warnings.warn(f"carbs_like: {e}; asked a Sobol point instead", RuntimeWarning, stacklevel=4)
        return Choice(start.draw(space, exclude, pool), {**meta, "source": "sobol", "fallback": str(e)})
    predictions = {"predicted_loss": sug.predicted_loss, "predicted_cost": sug.predicted_cost,
                   "p_success": sug.p_success}
    # JSON (journal, save) has no inf/NaN: an overflowing prediction (exp of a huge log cost) is None.
    meta.update(source="acquisition", acquisition=sug.kind)
    meta.update({k: v if v is None or math.isfinite(v) else None for k, v in predictions.items()})
    if sug.note:
        meta["note"] = sug.note
        warnings.warn(f"carbs_like: {sug.note}", RuntimeWarning, stacklevel=4)
    return Choice(space.to_configs(sug.x)[0], meta)
