"""Scaling laws: how the best hyperparameters and the loss move with scale.

* :mod:`~carbs_like.scaling.law`: the results (:class:`ScalingLaw`, :class:`Relation`,
  :class:`Prediction`) and what they do: fit, predict, propose, table;
* :mod:`~carbs_like.scaling.results`: the result dataclasses (Relation, Evidence, Prediction);
* :mod:`~carbs_like.scaling.surface`: the joint response-surface fit (one estimator of the relations);
* :mod:`~carbs_like.scaling.optima`: per-scale optima and power laws through them (the other);
* :mod:`~carbs_like.scaling.select`: the choice between them by cross-validation along scale;
* :mod:`~carbs_like.scaling.power_laws`: the loss law and the cost law;
* :mod:`~carbs_like.scaling.budget`: compute-optimal proposals (a budget split between the axes);
* :mod:`~carbs_like.scaling.plots`: figures of the relations and the loss law (matplotlib).
"""

from .law import Evidence, Prediction, Relation, ScalingLaw
from .power_laws import CostLaw, LossLaw, fit_cost_law, fit_loss_law

__all__ = [
    "CostLaw",
    "Evidence",
    "LossLaw",
    "Prediction",
    "Relation",
    "ScalingLaw",
    "fit_cost_law",
    "fit_loss_law",
]
