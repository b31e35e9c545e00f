"""Crash-safe tuning: journal every event, and resume after a crash, a kill or a Ctrl-C.

Run it, stop it at any moment (Ctrl-C, or ``kill -9``), and run it again: it continues where it
stopped. Finished trials are never lost; trials that were running at the crash are run again.

    python examples/resume.py            # uses runs/resume-example
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carbs_like import Tuner
from carbs_like.testing import LLMLandscape

FOLDER = Path("runs/resume-example")


def main(n_trials: int = 40) -> None:
    landscape = LLMLandscape()
    if (FOLDER / "journal.jsonl").exists():
        tuner = Tuner.resume(FOLDER)
        print(f"resumed: {len(tuner.observations())} observations, {len(tuner.pending)} pending")
    else:
        tuner = Tuner(landscape.space(), seed=0, path=FOLDER)
    rng = np.random.default_rng()

    with tuner:  # releases the journal's lock on exit
        for trial in tuner.pending:  # interrupted by the crash: run them again (or tuner.forget(trial))
            loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
            tuner.tell(trial, loss=loss, cost=cost, failed=failed)
        while len(tuner.observations()) < n_trials:
            trial = tuner.ask()
            loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
            tuner.tell(trial, loss=loss, cost=cost, failed=failed)
            print(f"trial {trial.id}: loss {loss}, cost {cost:.3g} ({trial.metadata['source']})")
        print(tuner.pareto_front()[["trial_id", "n_params", "tokens", "lr", "loss", "cost"]])


if __name__ == "__main__":
    main()
