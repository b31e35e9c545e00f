"""Kill -9 a tuning process at random moments and resume it each time; nothing told may be lost.

A child process tunes the synthetic LLM landscape with the journal on (``Tuner(..., path=DIR)``),
printing ``told <id>`` after each ``tell`` returns. The parent kills it with SIGKILL at a random
moment (uniform between ``--min-wait`` and ``--max-wait`` seconds after it starts, the latter
raised to 2.5x the slowest ask seen so that asks can finish between kills), ``--kills`` times; each new child ``Tuner.resume``s the folder, re-runs the trials that
were pending at the kill, and tunes on. At the end the parent resumes the folder itself and checks
that every trial acknowledged as told is there, once.

    python benchmarks/kill_stress.py                 # 20 kills, prints the tally
    python benchmarks/kill_stress.py --kills 5 --max-wait 4
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(folder: Path, seed: int) -> None:
    """Tune until killed."""
    import numpy as np

    from carbs_like import Tuner, TunerSettings
    from carbs_like.testing import LLMLandscape
    from carbs_like.journal import JOURNAL_FILE

    landscape = LLMLandscape()
    settings = TunerSettings(n_candidates=200, fit_maxiter=10, max_fit_points=64)  # quick asks: more of them per round
    if (folder / JOURNAL_FILE).exists():
        tuner = Tuner.resume(folder)
    else:
        tuner = Tuner(landscape.space(), seed=seed, settings=settings, path=folder)
    rng = np.random.default_rng([seed, os.getpid()])
    print(f"ready {len(tuner.observations())} {len(tuner.pending)}", flush=True)

    def run(trial) -> None:
        loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
        time.sleep(float(rng.uniform(0.1, 1.5)))  # the "training run": kills land here too
        tuner.tell(trial, loss=loss, cost=cost, failed=failed)
        print(f"told {trial.id} {trial.metadata.get('source', 'rerun-after-resume')}", flush=True)

    for trial in tuner.pending:  # died with the previous process: run them again
        print(f"rerun {trial.id}", flush=True)
        run(trial)
    while True:
        start = time.perf_counter()
        trial = tuner.ask()
        print(f"asked {trial.id} {time.perf_counter() - start:.2f}", flush=True)
        run(trial)


def parent(*, kills: int, seed: int, min_wait: float, max_wait: float, folder: Path) -> int:
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    told: list[int] = []
    reruns = torn = takeovers = 0
    sizes: list[int] = []
    longest_ask = 0.0  # the kill window grows with it, so that asks can finish between kills
    for round_ in range(kills):
        stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: warnings must not block the child
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(folder), "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )
        lines: list[str] = []
        ready = threading.Event()

        def read(stream=proc.stdout, lines=lines, ready=ready) -> None:
            for line in stream:
                lines.append(line.split())
                ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not ready.wait(timeout=120):
            proc.kill()
            stderr.seek(0)
            print(stderr.read(), file=sys.stderr)
            raise RuntimeError("the child did not start")
        waited = rng.uniform(min_wait, max(max_wait, 2.5 * longest_ask + 2.0))
        time.sleep(waited)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        stderr.seek(0)
        err = stderr.read()
        stderr.close()
        if "Traceback" in err:
            print(err, file=sys.stderr)
            raise RuntimeError("the child crashed by itself")
        torn += err.count("is torn")
        takeovers += err.count("took over a lock")
        sizes.append(int(lines[0][1]))
        told += [int(w[1]) for w in lines if w[0] == "told"]
        reruns += sum(w[0] == "rerun" for w in lines)
        asks = [float(w[2]) for w in lines if w[0] == "asked"]
        # No ask finished: one takes longer than this wait (e.g. the first model fit), so wait longer.
        longest_ask = max([longest_ask, *asks] if asks else [longest_ask, waited])
        print(
            f"round {round_ + 1:2d}: resumed with {lines[0][1]} observations, {lines[0][2]} pending; "
            f"told {sum(w[0] == 'told' for w in lines)} before the kill",
            flush=True,
        )

    from carbs_like import Tuner

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner = Tuner.resume(folder)
    torn += sum("is torn" in str(w.message) for w in caught)
    ids = list(tuner.observations()["trial_id"])
    recovered = set(ids)
    lost = sorted(set(told) - recovered)
    duplicates = sum(c - 1 for c in Counter(ids).values()) + sum(c - 1 for c in Counter(told).values())
    sources = Counter(t.metadata.get("source") for t in tuner._trials.values())
    grew = all(b >= a for a, b in zip(sizes, sizes[1:])) and len(ids) > sizes[-1]
    tuner.close()
    print()
    print(f"kills (SIGKILL)                 {kills}")
    print(f"trials told (acknowledged)      {len(told)}")
    print(f"trials recovered after resume   {len(recovered & set(told))} of them; {len(ids)} observations in all")
    print(f"lost                            {len(lost)}{'  ' + str(lost) if lost else ''}")
    print(f"duplicates                      {duplicates}")
    print(f"pending at a kill, re-run       {reruns}")
    print(f"torn last lines repaired        {torn}")
    print(f"dead holders' locks taken over  {takeovers}")
    print(f"search went on                  {'yes' if grew else 'NO'} (trials by source: {dict(sources)})")
    return 0 if not lost and not duplicates and grew else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-wait", type=float, default=1.0, help="seconds after the child is ready")
    parser.add_argument("--max-wait", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=None, help="journal folder (default: a temp folder)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.seed)
        return 0
    if args.dir is not None:
        return parent(kills=args.kills, seed=args.seed, min_wait=args.min_wait, max_wait=args.max_wait, folder=args.dir)
    with tempfile.TemporaryDirectory() as tmp:
        return parent(
            kills=args.kills, seed=args.seed, min_wait=args.min_wait, max_wait=args.max_wait,
            folder=Path(tmp) / "sweep",
        )


if __name__ == "__main__":
    sys.exit(main())
