"""Run carbs_like and its peers on the same problems and seeds, and write the results.

Usage::

    python -m benchmarks.run --suite smoke|quick|full [--out DIR] [--methods carbs_like,random,...]

Three problem families (see :mod:`benchmarks.problems`):

1. cost-aware LLM landscapes: the gap of each method's loss-vs-cost front to the true front
   (:func:`carbs_like.testing.front_gap`) after each checkpoint number of trials, and the
   regret of its recommendation at a 33x larger size (1e9 params, 2e10 tokens): carbs_like's
   ``tuner.scaling_law().propose(...)``; for every method also its best observed config carried
   over unchanged (what a user of a tuner without a scaling model does);
2. BoTorch test functions: best loss so far (Branin, Hartmann6) and the hypervolume of the
   (loss, cost) front (BraninCurrin) after N trials;
3. ask latency against the number of observations, for every model-based method (warm-started
   with N random observations of the default landscape, then a few timed asks).

Every finished run is saved at once to ``DIR/raw_<suite>.json`` (atomic write); a rerun of the same
suite skips the runs already there (``--fresh`` starts over), and ``--report-only`` rebuilds the
table and plots from that file. The report is ``DIR/results_<suite>.md`` plus PNGs in ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .methods import METHODS, MODEL_BASED, make_method, sample_domain, versions
from .problems import LandscapeProblem, function_problem, landscape_problem

__all__ = ["SUITES", "Suite", "main", "run_suite"]

RAW_FORMAT = "carbs_like.benchmarks.raw"
RAW_VERSION = 1


@dataclass(frozen=True)
class Suite:
    """What one suite runs.

    Attributes:
        name: ``smoke``, ``quick`` or ``full``.
        seeds: the seeds every method runs with, on every problem.
        landscapes: ``"default"`` and/or seeds of ``LLMLandscape.random``.
        checkpoints: trial counts at which landscape fronts and recommendations are scored
            (the runs last as long as the largest).
        functions: BoTorch test functions and how many trials each gets.
        latency_observations: numbers of warm-start observations for the latency problem.
        latency_asks: timed asks at each number of observations.
        latency_limit_s: an ask running longer than this is abandoned, and the method skips the
            larger numbers of observations.
        search_limit_s: a search still running after this many seconds stops where it is (its
            later checkpoints are reported as not reached); None: no limit.
        leave_out: ``(method, kind)`` pairs this suite does not run (kind: ``"landscape"``,
            ``"function"`` or ``"latency"``), with the reason in ``leave_out_reason``.
    """

    name: str
    seeds: tuple[int, ...]
    landscapes: tuple[str, ...]
    checkpoints: tuple[int, ...]
    functions: tuple[tuple[str, int], ...]
    latency_observations: tuple[int, ...]
    latency_asks: int
    latency_limit_s: float = 120.0
    search_limit_s: float | None = None
    leave_out: tuple[tuple[str, str], ...] = ()
    leave_out_reason: str = ""

    def __post_init__(self) -> None:
        if not self.seeds or not self.checkpoints:
            raise ValueError(f"suite {self.name}: needs at least one seed and one checkpoint")
        if list(self.checkpoints) != sorted(self.checkpoints):
            raise ValueError(f"suite {self.name}: checkpoints must increase, got {self.checkpoints}")


SUITES = {
    "smoke": Suite(
        name="smoke", seeds=(0,), landscapes=("default",), checkpoints=(3, 5),
        functions=(("branin", 5), ("branin_currin", 5)), latency_observations=(6,), latency_asks=1,
    ),
    "quick": Suite(
        name="quick", seeds=(0, 1), landscapes=("default", "1"), checkpoints=(30, 60),
        functions=(("branin", 30), ("hartmann6", 40), ("branin_currin", 30)),
        latency_observations=(50, 200, 1000), latency_asks=2, latency_limit_s=300.0,
        search_limit_s=1200.0, leave_out=(("ax", "landscape"),),
        leave_out_reason=(
            "Ax on the LLM landscapes: its multi-objective asks on this mixed (choice + integer) space "
            "take minutes each on a 2-core machine (8 trials took 16 min in the smoke run), so 60 "
            "trials do not fit a quick run; the full suite runs it"
        ),
    ),
    "full": Suite(
        name="full", seeds=(0, 1, 2, 3, 4), landscapes=("default", "1", "2"), checkpoints=(60, 120, 240),
        functions=(("branin", 50), ("hartmann6", 100), ("branin_currin", 60)),
        latency_observations=(50, 200, 1000), latency_asks=3, latency_limit_s=600.0,
        search_limit_s=4 * 3600.0,  # Ax's 240-trial landscape runs would otherwise take most of a day
    ),
}


# --------------------------------------------------------------------------- running --------
class AskTimeout(Exception):
    """An ask ran past its time limit."""


@contextmanager
def time_limit(seconds: float | None):
    """Raise :class:`AskTimeout` in this block after ``seconds`` (POSIX main thread only; else no limit).

    Used so that one slow ask cannot hold a worker far beyond the suite's time limits.
    """
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise AskTimeout(f"ask ran past {seconds:g}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _problem_rng(problem_name: str, seed: int) -> np.random.Generator:
    """The noise generator of one (problem, seed): the same for every method."""
    return np.random.default_rng([seed, sum(map(ord, problem_name))])


def run_search(method_name: str, problem, *, seed: int, n_trials: int, on_checkpoint=None,
               checkpoints: Sequence[int] = (), limit_s: float | None = None) -> dict[str, Any]:
    """Run one method on one problem for ``n_trials`` trials (ask, evaluate, tell).

    A run still going after ``limit_s`` seconds stops early; ``"stopped"`` then says when.

    Returns:
        ``{"history": [{"config", "loss", "cost", "failed", "ask_s"}...], "extra": {...}}``;
        ``on_checkpoint(method, n)`` is called after ``n`` trials for each ``n`` in
        ``checkpoints`` and its dict return value is stored under ``extra[str(n)]``.
    """
    method = make_method(method_name, problem, seed=seed)
    rng = _problem_rng(problem.name, seed)
    history: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    for i in range(n_trials):
        left = None if limit_s is None else limit_s - (time.perf_counter() - start)
        stopped = {"history": history, "extra": extra,
                   "stopped": f"time limit {limit_s}s reached after {i} trials"}
        if left is not None and left <= 0:
            return stopped
        t = time.perf_counter()
        try:
            with time_limit(left):
                config = method.ask()
        except AskTimeout:
            return stopped
        ask_s = time.perf_counter() - t
        outcome = problem.evaluate(config, rng=rng)
        method.tell(config, outcome)
        history.append({"config": _jsonable(config), "loss": outcome.loss, "cost": outcome.cost,
                        "failed": outcome.failed, "ask_s": ask_s})
        if on_checkpoint is not None and (i + 1) in checkpoints:
            extra[str(i + 1)] = on_checkpoint(method, i + 1)
    return {"history": history, "extra": extra}


def _jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        out[k] = v
    return out


def _scaling_proposal(method, problem: LandscapeProblem) -> dict[str, Any]:
    """carbs_like's scaling-law proposal at the target size, or why there is none."""
    try:
        from carbs_like import scaling  # noqa: F401
    except ImportError:
        return {"proposal": None, "why": "carbs_like.scaling is not available on this branch"}
    n_params, tokens = problem.target
    try:
        config = method.tuner.scaling_law().propose(n_params=n_params, tokens=tokens)
    except ValueError as e:  # too few observations or scales to fit: the law says which
        return {"proposal": None, "why": str(e)}
    except Exception:  # noqa: BLE001 - a bug in the scaling law: recorded and reported, not hidden
        import traceback

        return {"proposal": None, "why": "scaling_law() raised: " + traceback.format_exc().strip().splitlines()[-1]}
    return {"proposal": _jsonable(config)}


def refit_scaling(raw: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Recompute carbs_like's scaling-law proposals from the saved landscape histories.

    The law is fitted on the observations only, so a tuner rebuilt with ``add`` from a run's first
    ``n`` trials gives the same proposal as the tuner that asked them: this refreshes the scaling
    column after ``carbs_like.scaling`` changes, without rerunning any search.
    """
    from carbs_like import Tuner

    for key, run in raw["runs"].items():
        head, method, seed = key.split("/")
        if method != "carbs_like" or not head.startswith("llm_") or "history" not in run:
            continue
        which = "default" if head == "llm_default" else head.removeprefix("llm_random")
        problem = landscape_problem(which)
        for n in raw["suite"]["checkpoints"]:
            if n > len(run["history"]):
                continue
            tuner = Tuner(problem.space, seed=int(seed))
            for h in run["history"][:n]:
                tuner.add(h["config"], loss=h["loss"], cost=h["cost"], failed=h["failed"])
            holder = type("Held", (), {"tuner": tuner})()
            run.setdefault("extra", {})[str(n)] = _scaling_proposal(holder, problem)
            log(f"  {key} @{n}: scaling law refitted")
    return raw


def latency(method_name: str, *, n_observations: int, n_asks: int, seed: int,
            limit_s: float | None = None) -> dict[str, Any]:
    """Seconds per ask after warm-starting with ``n_observations`` random observations.

    The observations are uniform draws from the default landscape's domain, evaluated with noise
    (failed ones included), imported with the method's ``add``. Then ``n_asks`` times: ask (timed,
    wall clock and process CPU), evaluate, tell. An ask running past ``limit_s`` is abandoned and
    the result says so (``{"skipped": ...}``).
    """
    problem = landscape_problem("default")
    method = make_method(method_name, problem, seed=seed)
    rng = np.random.default_rng([seed, 99])
    for _ in range(n_observations):
        config = sample_domain(problem.domain, rng)
        method.add(config, problem.evaluate(config, rng=rng))
    wall, cpu = [], []
    for _ in range(n_asks):
        t, c = time.perf_counter(), time.process_time()
        try:
            with time_limit(limit_s):
                config = method.ask()
        except AskTimeout:
            return {"skipped": f"an ask at {n_observations} observations ran past {limit_s:.0f}s", "wall_s": wall}
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        method.tell(config, problem.evaluate(config, rng=rng))
    return {"wall_s": wall, "cpu_s": cpu}


# --------------------------------------------------------------------------- the suite ------
class RawStore:
    """The raw results of a suite, one entry per finished run, saved after each."""

    def __init__(self, path: Path, *, suite: Suite, fresh: bool) -> None:
        self.path = path
        self.data: dict[str, Any] = {"format": RAW_FORMAT, "version": RAW_VERSION, "suite": asdict(suite), "runs": {}}
        if path.exists() and not fresh:
            old = json.loads(path.read_text())
            if old.get("format") != RAW_FORMAT or old.get("version") != RAW_VERSION:
                raise ValueError(f"{path}: not a raw benchmark file of version {RAW_VERSION}; pass --fresh to overwrite")
            self.data["runs"] = old["runs"]
            self.data["started"] = old.get("started")
        self.data.setdefault("started", None)
        self.data["started"] = self.data["started"] or _now()

    def has(self, key: str) -> bool:
        return key in self.data["runs"]

    def put(self, key: str, value: Any) -> None:
        from carbs_like.tuner import write_json_atomic

        self.data["runs"][key] = value
        self.data["finished"] = _now()
        write_json_atomic(self.path, _finite(self.data))


def _finite(x: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


@dataclass(frozen=True)
class Job:
    """One unit of work: a search run or a latency measurement, saved under ``key``."""

    key: str
    kind: str  # "landscape", "function" or "latency"
    method: str
    which: str  # the landscape, the test function, or the number of observations
    seed: int
    n: int  # trials (searches) or timed asks (latency)
    order: tuple[int, ...]  # jobs run in this order: the most telling results first


def plan(suite: Suite, methods: Sequence[str]) -> list[Job]:
    """Every job of ``suite``, most telling first (so a cut-short run still answers the headline).

    Order: the landscapes for the first seed, latency up to 200 observations, the landscapes for
    the other seeds, the latency at more observations, then the test functions.
    """
    jobs = []
    for i, seed in enumerate(suite.seeds):
        for j, which in enumerate(suite.landscapes):
            name = landscape_problem(which).name
            for m in methods:
                order = (0 if i == 0 else 2, i, j)
                jobs.append(Job(f"{name}/{m}/{seed}", "landscape", m, which, seed, max(suite.checkpoints), order))
        for j, (fname, n_trials) in enumerate(suite.functions):
            for m in methods:
                jobs.append(Job(f"{fname}/{m}/{seed}", "function", m, fname, seed, n_trials, (4, i, j)))
    for m in (m for m in methods if m in MODEL_BASED):
        for n in suite.latency_observations:
            order = (1 if n <= 200 else 3, n, 0)
            jobs.append(Job(f"latency/{m}/{n}", "latency", m, str(n), suite.seeds[0], suite.latency_asks, order))
    return sorted((j for j in jobs if (j.method, j.kind) not in suite.leave_out), key=lambda j: j.order)


def run_job(job: Job, *, checkpoints: Sequence[int], limit_s: float | None = None,
            latency_limit_s: float | None = None) -> dict[str, Any]:
    """Run one job; returns what is saved under its key.

    A method that raises does not stop the suite: the error and its traceback are saved under
    the job's key (``{"error": ...}``), printed, and shown in the report, so nothing is hidden.
    """
    try:
        return _run_job(job, checkpoints=checkpoints, limit_s=limit_s, latency_limit_s=latency_limit_s)
    except Exception:  # noqa: BLE001 - recorded in the results and the report, not swallowed
        import traceback

        return {"error": traceback.format_exc()}


def _run_job(job: Job, *, checkpoints: Sequence[int], limit_s: float | None,
             latency_limit_s: float | None) -> dict[str, Any]:
    t = time.perf_counter()
    if job.kind == "latency":
        result = latency(job.method, n_observations=int(job.which), n_asks=job.n, seed=job.seed,
                         limit_s=latency_limit_s)
    elif job.kind == "landscape":
        problem = landscape_problem(job.which)
        hook = (lambda m, n: _scaling_proposal(m, problem)) if job.method == "carbs_like" else None
        result = run_search(job.method, problem, seed=job.seed, n_trials=job.n, on_checkpoint=hook,
                            checkpoints=checkpoints, limit_s=limit_s)
    else:
        result = run_search(job.method, function_problem(job.which), seed=job.seed, n_trials=job.n, limit_s=limit_s)
    result["seconds"] = time.perf_counter() - t
    return result


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # parallel jobs on a few cores: one thread each


def _describe(job: Job, result: Mapping[str, Any]) -> str:
    if "error" in result:
        return "FAILED:\n" + result["error"]
    if job.kind == "latency" and "skipped" in result:
        return f"skipped ({result['skipped']})"
    if job.kind == "latency":
        return f"median ask {np.median(result['wall_s']):.2f}s wall ({result['seconds']:.0f}s in all)"
    return f"{len(result['history'])} trials in {result['seconds']:.0f}s" + (
        f" ({result['stopped']})" if "stopped" in result else "")


def run_suite(suite: Suite, *, out: Path, methods: Sequence[str], fresh: bool = False, jobs: int = 1,
              log=print) -> dict[str, Any]:
    """Run every problem of ``suite`` with ``methods``; returns the raw results (also saved).

    Args:
        jobs: run this many jobs at once in worker processes (1: all in this process).
    """
    store = RawStore(out / f"raw_{suite.name}.json", suite=suite, fresh=fresh)
    store.data["machine"] = machine()
    store.data["versions"] = versions()
    store.data["methods"] = list(methods)
    store.data["jobs"] = jobs
    limits = dict(checkpoints=suite.checkpoints, limit_s=suite.search_limit_s, latency_limit_s=suite.latency_limit_s)
    todo = [j for j in plan(suite, methods) if not store.has(j.key)]
    if len(todo) < len(plan(suite, methods)):
        log(f"  {len(plan(suite, methods)) - len(todo)} jobs done before, kept")
    # A method whose ask took too long at some number of observations skips the larger numbers
    # (also when that was found by an earlier, interrupted call).
    too_slow: dict[str, str] = {
        key.split("/")[1]: run["skipped"] for key, run in store.data["runs"].items()
        if key.startswith("latency/") and "skipped" in run
    }

    def finish(job: Job, result: dict[str, Any]) -> None:
        store.put(job.key, result)
        log(f"  {job.key}: {_describe(job, result)}")
        if job.kind == "latency" and "skipped" in result:
            too_slow[job.method] = result["skipped"]

    def skip(job: Job) -> bool:
        if job.kind == "latency" and job.method in too_slow:
            store.put(job.key, {"skipped": too_slow[job.method]})
            log(f"  {job.key}: skipped ({too_slow[job.method]})")
            return True
        return False

    if jobs <= 1:
        for job in todo:
            if not skip(job):
                finish(job, run_job(job, **limits))
        return store.data

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init) as pool:
        queue, running = list(todo), {}
        while queue or running:
            while queue and len(running) < jobs:
                job = queue.pop(0)
                if not skip(job):
                    running[pool.submit(run_job, job, **limits)] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finish(running.pop(future), future.result())
    return store.data


def available_methods(requested: Sequence[str] | None, *, log=print) -> list[str]:
    """The requested methods (default: all) whose packages are installed."""
    import importlib.util

    names = list(requested or METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; pick from {', '.join(METHODS)}")
    need = {"optuna_tpe": "optuna", "optuna_gp": "optuna", "ax": "ax"}
    keep = []
    for n in names:
        module = need.get(n)
        if module is not None and importlib.util.find_spec(module) is None:
            log(f"skipping {n}: {module} is not installed (pip install 'carbs-like[bench]')")
            continue
        keep.append(n)
    return keep


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="smoke")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="folder for the raw JSON, the markdown table and the PNGs")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--fresh", action="store_true", help="ignore runs saved by an earlier call")
    parser.add_argument("--jobs", type=int, default=1, help="run this many jobs at once (worker processes)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from the raw file")
    parser.add_argument("--refit-scaling", action="store_true",
                        help="with --report-only: recompute carbs_like's scaling-law proposals from the saved runs")
    args = parser.parse_args(argv)

    from .report import write_report

    suite = SUITES[args.suite]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        raw_path = args.out / f"raw_{suite.name}.json"
        if not raw_path.exists():
            raise SystemExit(f"{raw_path} does not exist; run the suite first (without --report-only)")
        raw = json.loads(raw_path.read_text())
        if args.refit_scaling:
            from carbs_like.tuner import write_json_atomic

            raw = refit_scaling(raw)
            raw["scaling_refitted"] = _now()
            write_json_atomic(raw_path, _finite(raw))
    else:
        methods = available_methods(args.methods.split(",") if args.methods else None)
        print(f"suite {suite.name}: methods {', '.join(methods)}; writing to {args.out}", flush=True)
        raw = run_suite(suite, out=args.out, methods=methods, fresh=args.fresh, jobs=args.jobs,
                        log=lambda s: print(s, flush=True))
    path = write_report(raw, out=args.out)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
