"""Thread limits for the fits: small numerical fits on a busy machine run many times slower
with the default BLAS and torch thread counts (see Optuna's ``_gp/thread_limiting.py``)."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["limited_threads"]


@contextlib.contextmanager
def limited_threads(threads: int | None):
    """Hold torch (and, with threadpoolctl installed, BLAS) to ``threads`` threads; restore after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: torch's own threads are limited either way
            yield
        else:
            with threadpool_limits(limits=threads):
                yield
    finally:
        torch.set_num_threads(before)
