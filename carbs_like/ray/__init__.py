"""Ray Tune integration: :class:`CarbsSearcher` proposes trials (``searcher.py``), and
:class:`CarbsScheduler` stops trials that cannot reach the front (``scheduler.py``), talking to
the searcher only through its public methods. Both are thin over the :class:`~carbs_like.Tuner`
and the ask-ahead engine (:mod:`carbs_like.prefetch`).

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
"""

try:
    import ray.tune  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("carbs_like.ray needs Ray Tune; install it with: pip install 'carbs-like[ray]'") from e

from .scheduler import CarbsScheduler
from .searcher import CarbsSearcher

__all__ = ["CarbsScheduler", "CarbsSearcher"]
