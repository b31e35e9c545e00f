"""Early stopping's pure core: is a running trial hopeless against the front?

No Ray here: :class:`~carbs_like.ray.CarbsScheduler` stops trials with it under Ray Tune. The
local backend of the ``carbs-like`` command does not stop trials early yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["hopeless"]


def hopeless(
    curve: Sequence[tuple[float, float]],
    *,
    final_cost: float,
    front: Sequence[tuple[float, float]],
    margin: float = 0.0,
    window: int = 3,
) -> bool:
    """Whether a running trial cannot reach the front at the cost it will have spent.

    The forecast is optimistic: the loss keeps falling, linearly in log cost, at the steepest
    rate of the last ``window`` steps of its curve (learning curves flatten in log cost, so this
    undershoots them), from where it is now to ``final_cost``. The trial is hopeless if even that
    forecast is no better than the best loss of any observation costing at most ``final_cost``.

    Args:
        curve: ``(cost spent, loss)`` pairs of the trial so far, in order.
        final_cost: what the trial will have spent when it finishes.
        front: ``(cost, loss)`` of finished, untruncated observations.
        margin: stop only if the forecast is worse by more than ``margin * |front loss|``.
        window: how many recent steps of the curve set the rate.

    Returns:
        True if the trial should be stopped. False when nothing finished costs at most
        ``final_cost`` (no front to compare with) or the curve has fewer than two points.
    """
    best = [loss for cost, loss in front if cost <= final_cost]
    if not best or len(curve) < 2:
        return False
    target = min(best)
    cost_now, loss_now = curve[-1]
    recent = curve[-(window + 1) :]
    slopes = [
        (l1 - l0) / math.log(c1 / c0)
        for (c0, l0), (c1, l1) in zip(recent[:-1], recent[1:])
        if c0 > 0 and c1 > c0
    ]
    rate = min([0.0, *slopes])  # <= 0: the steepest fall seen lately (none: no fall)
    forecast = loss_now + rate * math.log(max(final_cost / cost_now, 1.0))
    return forecast > target + margin * abs(target)
