"""Running trials for the ``carbs-like`` command: the trainable call, the local process-pool backend
(asking ahead with :class:`~carbs_like.prefetch.Prefetcher`, as the Ray backend does), and the
progress table.

A *trainable* is ``module:function``; the function takes a config dict and returns a dict with
the loss and the cost (keys ``loss`` and ``cost`` unless ``--metric``/``--cost-key`` say
otherwise; ``failed: True`` or a NaN loss marks a failed run).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..prefetch import Prefetcher
from ..space import SearchSpace
from ..stopping import hopeless
from ..tuner import Tuner
from .experiment import Experiment, limits_reached, load_trainable, save_snapshot, totals

__all__ = ["Progress", "front_size", "normalise_result", "run_local", "run_trainable", "result_metadata"]


def run_trainable(spec: str, config: dict[str, Any], *, metric: str, cost: str, threads: int = 1,
                  front: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Call the trainable on one config and normalise its result (runs in a worker process).

    A trainable may also be a generator that yields intermediate results (each with the loss so
    far, the cost spent so far and ``final_cost``, what it will have spent at its end): it is then
    stopped early, as ``CarbsScheduler`` does under Ray (:func:`carbs_like.stopping.hopeless`),
    when even an optimistic forecast of its curve cannot reach ``front``, and its last result is
    recorded with ``truncated: True``.

    Returns:
        the trainable's (last) result with ``loss`` (NaN when failed), ``cost``, ``failed`` and
        ``seconds`` (wall time, the cost when the trainable reports none).
    """
    os.environ.setdefault("CARBS_LIKE_THREADS", str(threads))
    fn = load_trainable(spec)
    start = time.perf_counter()
    result = fn(dict(config))
    if inspect.isgenerator(result):
        result = _follow(result, metric=metric, cost=cost, front=front or [])
    seconds = time.perf_counter() - start
    return normalise_result(result, metric=metric, cost=cost, seconds=seconds)


def _follow(steps: Any, *, metric: str, cost: str, front: list[tuple[float, float]]) -> Any:
    """The last result of a generator trainable, stopping it once it is hopeless."""
    last: Any = None
    curve: list[tuple[float, float]] = []
    for last in steps:
        loss, spent, final = (last.get(metric), last.get(cost), last.get("final_cost")) if isinstance(last, Mapping) \
            else (None, None, None)
        if loss is None or spent is None or not math.isfinite(float(loss)):
            continue
        curve.append((float(spent), float(loss)))
        if final is not None and hopeless(curve, final_cost=float(final), front=front):
            steps.close()
            return {**last, "truncated": True}
    if last is None:
        raise ValueError("the trainable's generator yielded no result")
    return last


def normalise_result(result: Any, *, metric: str, cost: str, seconds: float) -> dict[str, Any]:
    """A trainable's result as ``loss`` (NaN when failed), ``cost``, ``failed``, ``seconds`` and the
    other JSON scalars it reported."""
    if not isinstance(result, Mapping):
        raise TypeError(f"the trainable returned {type(result).__name__}; it must return a dict with {metric!r} and {cost!r}")
    if metric not in result:
        raise KeyError(f"the trainable's result has no {metric!r} (keys: {sorted(result)}); pass --metric")
    out = {k: v for k, v in result.items() if is_json_scalar(v)}
    loss = result[metric]
    failed = bool(result.get("failed", False)) or loss is None or not math.isfinite(float(loss))
    out["loss"] = math.nan if failed else float(loss)
    c = result.get(cost)
    out["cost"] = float(c) if c is not None and math.isfinite(float(c)) and float(c) > 0 else max(seconds, 1e-9)
    out["failed"] = failed
    out.setdefault("seconds", seconds)
    return out


def is_json_scalar(v: Any) -> bool:
    return isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))


def result_metadata(result: Mapping[str, Any]) -> dict[str, Any]:
    """The extra scalar keys of a normalised result, stored as the observation's metadata."""
    return {k: v for k, v in result.items() if k not in ("loss", "cost", "failed") and is_json_scalar(v)}


def trial_worker(spec: str, config: dict[str, Any], metric: str, cost: str, threads: int,
                 front: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Process-pool entry point: a trial's exception becomes a failed result with its message."""
    start = time.perf_counter()
    try:
        return run_trainable(spec, config, metric=metric, cost=cost, threads=threads, front=front)
    except Exception as e:  # noqa: BLE001 - the trial failed; reported as a failure with its error
        return {"loss": math.nan, "cost": max(time.perf_counter() - start, 1e-9), "failed": True,
                "error": f"{type(e).__name__}: {e}"}


def run_local(tuner: Tuner, experiment: Experiment, folder: Path, progress: "Progress") -> None:
    """Run trials in a process pool (no Ray needed), asking ahead in a background thread so a
    freed slot is refilled at once; a snapshot is written after every finished trial."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n_done, spent = totals(tuner)
    running: dict[Any, Any] = {}

    def wanted() -> int:
        """Trials to keep asked ahead: one per free slot (one more while all are busy, re-asked
        when a result makes it stale), never more than the trial limit leaves."""
        free = experiment.concurrency - len(running)
        return max(0, min(max(free, 1), experiment.trials - n_done - len(running)))

    engine = Prefetcher(tuner, target=wanted)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(experiment.concurrency, mp_context=ctx, initializer=_ignore_sigint)
    try:
        while True:
            while len(running) < experiment.concurrency and limits_reached(experiment, n_done, spent, len(running)) is None:
                trial = engine.take()
                if trial is None:
                    break
                front = [(c, loss) for c, loss, failed, meta in engine.records()
                         if not failed and loss is not None and not meta.get("truncated", False)]
                fut = pool.submit(trial_worker, experiment.trainable, trial.config, experiment.metric,
                                  experiment.cost, experiment.cpus_per_trial, front)
                running[fut] = trial
            if not running:
                if limits_reached(experiment, n_done, spent) is not None:
                    return
                engine.wait_ready(timeout=0.5)
                continue
            waiting = limits_reached(experiment, n_done, spent, len(running)) is None and len(running) < experiment.concurrency
            done, _ = wait(running, timeout=0.05 if waiting else None, return_when=FIRST_COMPLETED)
            for fut in done:
                trial = running.pop(fut)
                result = fut.result()
                failed = bool(result["failed"])
                engine.tell(trial.id, loss=None if failed else float(result["loss"]), cost=float(result["cost"]),
                            failed=failed, metadata=result_metadata(result))
                n_done, spent = n_done + 1, spent + float(result["cost"])
                save_snapshot(engine.snapshot(), folder)
                progress.row(trial.id, trial.config, result)
    finally:
        # On an interrupt, stop the running trials now: they are asked again on resume.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        engine.finish()
        engine.flush()  # every result told (and journaled) before the caller closes the tuner


def _ignore_sigint() -> None:
    """Worker processes leave Ctrl-C to the driver, which stops them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Progress:
    """Prints one row per finished trial: how many are done, its tuner id, config, loss, cost, the
    front size and the best so far. (Tuner ids are not consecutive: a trial asked ahead and
    replaced by a fresher ask keeps its id unused.)

    It keeps its own list of (cost, loss) so it never waits for the tuner (which a background
    thread may be fitting).
    """

    def __init__(self, space: SearchSpace, *, out: Any = None,
                 previous: Sequence[tuple[Any, float, float | None]] = (), total: int | None = None) -> None:
        self.names = list(space.names)
        self.total = total
        self.out = out or sys.stdout
        self.start = time.time()
        self.points: list[tuple[float, float | None]] = [(c, l) for _, c, l in previous]
        self.best: tuple[float, str] | None = None
        for label, _, loss in previous:
            if loss is not None and (self.best is None or loss < self.best[0]):
                self.best = (loss, str(label))
        self._widths: list[int] | None = None

    def header(self) -> None:
        cols = ["done", "trial", *[short(n) for n in self.names], "loss", "cost", "front", "best (trial)", "time"]
        self._widths = [7, 5, *[9] * len(self.names), 7, 8, 5, 14, 6]
        print("  ".join(c.rjust(w) for c, w in zip(cols, self._widths)), file=self.out, flush=True)

    def row(self, label: Any, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        if self._widths is None:
            self.header()
        failed = bool(result.get("failed")) or not math.isfinite(float(result.get("loss", math.nan)))
        loss = None if failed else float(result["loss"])
        self.points.append((float(result["cost"]), loss))
        if loss is not None and (self.best is None or loss < self.best[0]):
            self.best = (loss, str(label))
        done = f"{len(self.points)}" + (f"/{self.total}" if self.total else "")
        cells = [done, str(label), *[fmt(config.get(n, "-")) for n in self.names],
                 "failed" if loss is None else f"{loss:.4f}", fmt(float(result["cost"])),
                 str(front_size(self.points)), f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-",
                 clock(time.time() - self.start)]
        print("  ".join(c.rjust(w) for c, w in zip(cells, self._widths)), file=self.out, flush=True)  # type: ignore[arg-type]
        if result.get("error"):
            print(f"      trial {label} raised {result['error']}", file=self.out, flush=True)


def front_size(points: Sequence[tuple[float, float | None]]) -> int:
    """Number of (cost, loss) points on the front of lower loss for lower cost."""
    ok = sorted((c, l) for c, l in points if l is not None)
    size, best = 0, math.inf
    for _, loss in ok:
        if loss < best:
            size, best = size + 1, loss
    return size


def short(name: str) -> str:
    """A param's name for a narrow table column."""
    return {"weight_decay": "wd", "batch_size": "batch", "n_params": "n_params"}.get(name, name[:9])


def fmt(v: Any) -> str:
    """A value for a table cell."""
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int) and abs(v) < 100_000:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
