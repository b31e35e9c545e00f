"""How fast the CarbsSearcher is inside Ray Tune's driver loop, and how many trials/minute it allows.

Runs real Ray Tune searches on a trivial objective (the synthetic LLM landscape, one result per
trial, ``reuse_actors=True``) and prints, per setup:

* the searcher's own time per ``suggest`` call (mean, median, p95, max), and per
  ``on_trial_complete`` — the time it takes from Tune's single-threaded loop;
* how often ``suggest`` had nothing ready (returned None; Tune asks again on its next step);
* the model asks made and how many were dropped unrun (asked ahead, then stale or unused);
* trials per minute of wall time, and the mean number of trials running against the limit.

Setups: Ray's own random search (Tune's overhead, the ceiling); the default background searcher;
the same searcher asking inline (``background=False``, what a naive adapter does); and the
background searcher with 16 concurrent trials of about 4 s each (logical CPUs: it measures
whether the searcher keeps 16 slots busy, not the machine).

    python benchmarks/ray_searcher.py            # about 3-4 minutes on 2 busy cores
    python benchmarks/ray_searcher.py --trials 40 --quick
    python benchmarks/ray_searcher.py --trials 40 --quick --sleep 5 --no-inline   # trials of 5 s
    python benchmarks/ray_searcher.py --only-16 --concurrent 32 --random   # many slots, against random
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import ray
from ray import tune

from carbs_like.testing.trainables import landscape_trainable
from carbs_like.testing import LLMLandscape, front_gap
from carbs_like.ray import CarbsSearcher
from carbs_like.tuner import TunerSettings


class TimedSearcher(CarbsSearcher):
    """Records the time of each call Tune's driver loop makes into the searcher."""

    def suggest(self, trial_id):
        t0 = time.perf_counter()
        out = super().suggest(trial_id)
        self.__dict__.setdefault("suggest_s", []).append(time.perf_counter() - t0)
        self.__dict__.setdefault("suggest_out", []).append(out)
        return out

    def on_trial_complete(self, trial_id, result=None, error=False):
        t0 = time.perf_counter()
        super().on_trial_complete(trial_id, result=result, error=error)
        self.__dict__.setdefault("complete_s", []).append(time.perf_counter() - t0)

    def time_asks(self):
        """Time the engine's model asks (in the background thread, or inline)."""
        engine, asks = self._engine, self.__dict__.setdefault("ask_s", [])
        ask = engine._ask_ahead

        def timed(*, stale, refit):
            t0 = time.perf_counter()
            ask(stale=stale, refit=refit)
            if not engine._tuner.in_initial_design:
                asks.append(time.perf_counter() - t0)

        engine._ask_ahead = timed


class Occupancy(tune.Callback):
    """Time-averaged number of running trials."""

    def __init__(self):
        self.running, self.t_last, self.area, self.t0 = 0, None, 0.0, None

    def _tick(self, delta):
        now = time.perf_counter()
        if self.t_last is not None:
            self.area += self.running * (now - self.t_last)
        else:
            self.t0 = now
        self.t_last, self.running = now, self.running + delta

    def on_trial_start(self, iteration, trials, trial, **info):
        self._tick(+1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._tick(-1)

    on_trial_error = on_trial_complete

    def mean(self):
        return self.area / max(self.t_last - self.t0, 1e-9) if self.t0 is not None else 0.0


def run(name, *, trials, concurrent, background, sleep, settings, steps=1):
    landscape = LLMLandscape()
    searcher = TimedSearcher(landscape.space(), max_trials=trials, settings=settings, background=background)
    searcher.time_asks()
    occupancy = Occupancy()
    with tempfile.TemporaryDirectory() as storage:
        t0 = time.perf_counter()
        tune.Tuner(
            tune.with_resources(landscape_trainable, {"cpu": 1 if concurrent <= 2 else 0.1}),
            param_space={"steps": steps, "sleep": sleep},
            # max_concurrent_trials: the searcher enforces it, and Tune keeps that many pending
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True,
                                        max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0, callbacks=[occupancy]),
        ).fit()
        wall = time.perf_counter() - t0
    s = sorted(searcher.__dict__.get("suggest_s", [0.0]))
    c = searcher.__dict__.get("complete_s", [0.0])
    outs = searcher.__dict__.get("suggest_out", [])
    n_none = sum(o is None for o in outs)
    asks = searcher.__dict__.get("ask_s", [float("nan")])
    obs = searcher.tuner.observations()
    dropped = searcher.tuner.state_dict()["next_id"] - len(obs)  # asked and forgotten (stale or unused)
    print(
        f"{name:<22} trials={len(obs):>3}  wall={wall:6.1f}s  trials/min={60 * len(obs) / wall:6.1f}  "
        f"running={occupancy.mean():4.1f}/{concurrent}\n"
        f"{'':<22} suggest: calls={len(s)} none={n_none} mean={1e3 * statistics.mean(s):7.2f}ms "
        f"median={1e3 * statistics.median(s):6.2f}ms p95={1e3 * s[int(0.95 * (len(s) - 1))]:7.2f}ms "
        f"max={1e3 * s[-1]:8.2f}ms | on_trial_complete mean={1e3 * statistics.mean(c):5.2f}ms "
        f"max={1e3 * max(c):6.2f}ms | front gap={front_gap(obs, landscape):.3f}\n"
        f"{'':<22} model asks (off the driver loop unless inline): n={len(asks)} "
        f"mean={statistics.mean(asks):.2f}s, {dropped} asks dropped unrun",
        flush=True,
    )


def run_random(*, trials, concurrent=2, sleep=0.0, steps=1):
    """Ray's own random search on the same objective: the ceiling Tune itself allows here."""
    space = LLMLandscape().space()
    param_space = {
        name: (tune.choice(list(space[name].choices)) if name == "schedule" else
               tune.loguniform(*_bounds(space[name])))
        for name in space.names
    }
    param_space["batch_size"] = tune.lograndint(1000, 10_000_000)
    with tempfile.TemporaryDirectory() as storage:
        t0 = time.perf_counter()
        occupancy = Occupancy()
        results = tune.Tuner(
            tune.with_resources(landscape_trainable, {"cpu": 1 if concurrent <= 2 else 0.1}),
            param_space={**param_space, "steps": steps, "sleep": sleep},
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrent, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="random", verbose=0, callbacks=[occupancy]),
        ).fit()
        wall = time.perf_counter() - t0
    ran = sum(r.error is None for r in results)
    print(f"{f'ray random, {concurrent} conc.':<22} trials={len(results):>3}  wall={wall:6.1f}s  "
          f"trials/min={60 * len(results) / wall:6.1f}  running={occupancy.mean():4.1f}/{concurrent}  "
          f"({ran} ran to the end; Tune's own overhead, no model)", flush=True)


def _bounds(param):
    import math

    lo, hi = param.nominal
    return math.exp(lo), math.exp(hi)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="skip the 16-concurrent setup")
    parser.add_argument("--only-16", action="store_true", help="run only the many-slot setup")
    parser.add_argument("--concurrent", type=int, default=16, help="slots of the many-slot setup")
    parser.add_argument("--random", action="store_true", help="also Ray's random search in the many-slot setup")
    parser.add_argument("--sleep", type=float, default=0.0,
                        help="seconds per trial in the 2-slot setups (0: instant; then asks are the bottleneck)")
    parser.add_argument("--no-inline", action="store_true", help="skip the inline 2-slot setup")
    args = parser.parse_args()
    settings = TunerSettings(n_init=10)  # default models, fewer space-filling trials
    ray.init(num_cpus=max(16, args.concurrent), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        common = dict(trials=args.trials, settings=settings)
        if not args.only_16:
            run_random(trials=args.trials, sleep=args.sleep)
            run("background, 2 conc.", concurrent=2, background=True, sleep=args.sleep, **common)
            if not args.no_inline:
                run("inline, 2 conc.", concurrent=2, background=False, sleep=args.sleep, **common)
        if not args.quick:  # trials of ~4 s: is every slot kept busy?
            n = args.concurrent
            if args.random:
                run_random(trials=args.trials, concurrent=n, sleep=2.0, steps=2)
            run(f"background, {n} conc.", concurrent=n, background=True, sleep=2.0, steps=2, **common)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
