"""Benchmarks of carbs_like against the tuners its users would pick instead.

Run ``python -m benchmarks.run --suite smoke|quick|full`` from the repository root (the peers are
the ``[bench]`` extra: ``pip install -e '.[bench]'``). See :mod:`benchmarks.run`.
"""
