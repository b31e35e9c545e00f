"""The tiny byte-level LM the demo tunes; it lives in :mod:`carbs_like.testing.tinylm`.

Kept importable as ``carbs_like.tinylm`` (trainable specs such as ``carbs_like.tinylm:train`` and
older scripts use this path).
"""

from .testing.tinylm import (
    Corpus,
    ModelShape,
    TinyLM,
    load_corpus,
    model_shape,
    ray_trainable,
    search_space,
    train,
    train_mup,
)

__all__ = ["Corpus", "ModelShape", "TinyLM", "load_corpus", "model_shape", "ray_trainable", "search_space", "train",
           "train_mup"]
