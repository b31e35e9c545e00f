"""What the tests, benchmarks, examples and the demo train on: synthetic LLM-pretraining
landscapes built from published laws (:mod:`~carbs_like.testing.landscapes`), a real tiny
byte-level transformer LM (:mod:`~carbs_like.testing.tinylm`), and Ray Tune trainables over them
(:mod:`~carbs_like.testing.trainables`, which imports Ray only when called).
"""

from .landscapes import LLMLandscape, front_gap

__all__ = ["LLMLandscape", "front_gap"]
