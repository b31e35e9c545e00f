"""A bounded number of torch and BLAS threads for the duration of a fit or an ask.

torch and the BLAS behind numpy default to every core. A GP of a few hundred points gains little
from more than one, and when trainers share the cores the threads thrash: a refit that takes
0.56 s on one thread took 23 s at the defaults on a busy 2-core machine. Optuna's GP sampler runs
single-threaded for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["limited_threads"]


@contextmanager
def limited_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` torch threads and ``n`` BLAS threads (numpy's, through
    threadpoolctl), restoring both afterwards; ``None`` changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)
