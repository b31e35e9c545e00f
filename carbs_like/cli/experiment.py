"""An experiment folder: what it tunes (``experiment.json``), its tuner, its trainable.

An *experiment folder* (``runs/NAME``) holds everything about one search::

    runs/NAME/experiment.json   what is tuned: the space, the trainable, the limits (versioned JSON)
    runs/NAME/journal/          the tuner's event journal: the source of truth
    runs/NAME/tuner.json        a snapshot of the tuner after every finished trial (a cache)
    runs/NAME/ray/              Ray Tune's own experiment folders, one per (re)start
    runs/NAME/report/           report.html and the figures
    runs/NAME/verify.json       the latest ``carbs-like verify``: its runs and verdict
    runs/NAME/verify_runs.jsonl every run verify trained, at any target (append-only)
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .._io import FormatError, loads, read_json, require_keys, write_json_atomic
from ..journal import JOURNAL_FILE, JournalError, JournalLockedError
from ..settings import TunerSettings
from ..space import SearchSpace
from ..tuner import Tuner

__all__ = [
    "DEMO_TRAINABLE",
    "EXPERIMENT_FILE",
    "JOURNAL_FOLDER",
    "TUNER_FILE",
    "Experiment",
    "UsageError",
    "check_configs",
    "enqueue_configs",
    "load_space",
    "load_trainable",
    "open_tuner",
    "read_enqueue_file",
    "save_snapshot",
    "totals",
]

EXPERIMENT_FILE = "experiment.json"
TUNER_FILE = "tuner.json"
JOURNAL_FOLDER = "journal"
FORMAT = "carbs_like.experiment"
VERSION = 1
DEMO_TRAINABLE = "carbs_like.tinylm:train"


class UsageError(Exception):
    """A problem with the user's input; the CLI prints its message as one line."""


@dataclass(frozen=True)
class Experiment:
    """What an experiment folder tunes, and its limits (``experiment.json``).

    Attributes:
        space: the search space as data (``SearchSpace.to_dict()``).
        trainable: ``module:function``.
        metric: key of the loss in the trainable's result (minimised).
        cost: key of the cost in the trainable's result.
        trials: stop after this many finished trials in total.
        budget: stop once the summed cost reaches this (None: no limit).
        concurrency: trials run at once.
        gpus_per_trial: GPUs per trial (fractions allowed with Ray).
        cpus_per_trial: CPU threads per trial.
        seed: the tuner's seed.
        settings: ``TunerSettings`` fields for a new tuner (None: the defaults).
    """

    space: dict[str, Any]
    trainable: str
    metric: str = "loss"
    cost: str = "cost"
    trials: int = 50
    budget: float | None = None
    concurrency: int = 2
    gpus_per_trial: float = 0.0
    cpus_per_trial: int = 1
    seed: int = 0
    settings: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError(f"--trials must be >= 1, got {self.trials}")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.budget is not None and not (self.budget > 0 and math.isfinite(self.budget)):
            raise UsageError(f"--budget must be a positive number, got {self.budget}")
        if self.gpus_per_trial < 0 or self.cpus_per_trial < 1:
            raise UsageError("--gpus-per-trial must be >= 0 and --cpus-per-trial >= 1")

    def new_tuner(self, path: Path | None = None) -> Tuner:
        settings = TunerSettings(**self.settings) if self.settings else None
        return Tuner(self.search_space(), seed=self.seed, settings=settings, path=path)

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space, source=EXPERIMENT_FILE)

    def save(self, folder: Path) -> None:
        write_json_atomic(folder / EXPERIMENT_FILE, {"format": FORMAT, "version": VERSION, **asdict(self)})

    @classmethod
    def load(cls, folder: Path) -> "Experiment":
        """Read ``folder/experiment.json``, strictly (an unknown field is an error, not dropped)."""
        file = folder / EXPERIMENT_FILE
        if not file.is_file():
            raise UsageError(f"{folder} is not an experiment folder (no {EXPERIMENT_FILE}); run `carbs-like tune` first")
        try:
            data = read_json(file, format=FORMAT, version=VERSION, what="experiment file")
            require_keys(data, {"format", "version", *(f.name for f in fields(cls))}, str(file))
            return cls(**{k: v for k, v in data.items() if k not in ("format", "version")})
        except (FormatError, TypeError) as e:
            raise UsageError(str(e)) from None


def load_space(path: str | Path) -> SearchSpace:
    """Load a search-space file, turning every problem into a one-line :class:`UsageError`."""
    try:
        return SearchSpace.from_file(path)
    except (ValueError, FileNotFoundError, TypeError) as e:
        raise UsageError(str(e)) from None


def load_trainable(spec: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``module:function``; the current folder is importable, as with ``python -m``."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"--trainable {spec!r}: expected module:function, e.g. {DEMO_TRAINABLE}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UsageError(
                f"--trainable {spec!r}: no module named {e.name!r}; run from the folder that holds it "
                "or add that folder to PYTHONPATH"
            ) from None
        raise UsageError(f"--trainable {spec!r}: importing module {module_name!r} failed: {e}") from None
    except (ImportError, SyntaxError) as e:
        raise UsageError(f"--trainable {spec!r}: importing module {module_name!r} failed: {e}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        import difflib
        import inspect

        exported = set(getattr(module, "__all__", ()))
        names = sorted(  # its own functions and the ones it re-exports (__all__), not its imports
            n for n, v in vars(module).items()
            if inspect.isfunction(v) and not n.startswith("_")
            and (n in exported or getattr(v, "__module__", None) == module.__name__)
        )
        close = difflib.get_close_matches(func_name, names, n=1)
        hint = f"did you mean {module_name}:{close[0]}? " if close else ""
        raise UsageError(f"--trainable {spec!r}: module {module_name!r} has no function {func_name!r}; "
                         f"{hint}its functions are {names[:12]}")
    return fn


def open_tuner(folder: Path, experiment: Experiment, *, for_search: bool = False) -> Tuner:
    """The experiment's tuner, rebuilt from its journal (the source of truth).

    With ``for_search`` the tuner takes the journal (a new one for a new experiment; the runs of a
    folder made before journals existed are imported from its ``tuner.json``) and the pending
    trials of an interrupted run are forgotten, so the search asks for them again. Without it,
    the tuner is a read-only copy (``Tuner.read``), which works while another process searches.
    """
    journal = folder / JOURNAL_FOLDER
    has_journal = (journal / JOURNAL_FILE).exists()
    try:
        if for_search:
            if has_journal:
                tuner = Tuner.resume(journal)
            else:
                tuner = experiment.new_tuner(journal)
                if (folder / TUNER_FILE).exists():  # a folder made without a journal: import its runs
                    _import_runs(tuner, Tuner.load(folder / TUNER_FILE))
            for trial in tuner.pending:
                tuner.forget(trial)
            return tuner
        if has_journal:
            return Tuner.read(journal)
        if (folder / TUNER_FILE).exists():
            return Tuner.load(folder / TUNER_FILE)
    except JournalLockedError as e:
        raise UsageError(f"another carbs-like is tuning in {folder}: {e}") from None
    except JournalError as e:
        raise UsageError(f"{e}. Run `carbs-like repair {folder}` to keep the events before that line "
                         "(the file is backed up first)") from None
    except FormatError as e:
        raise UsageError(str(e)) from None
    raise UsageError(f"{folder}: no finished trials yet (no journal); run `carbs-like tune` first")


def read_enqueue_file(path: str | Path) -> list[dict[str, Any]]:
    """The configs in an ``--enqueue`` file: a JSON list of objects, or one JSON object a line."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UsageError(f"--enqueue {path}: {e.strerror or e}") from None
    try:
        try:
            configs = loads(text)  # a list, or a single (possibly indented) config
            configs = configs if isinstance(configs, list) else [configs]
        except ValueError:
            configs = [loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as e:
        raise UsageError(f"--enqueue {path}: not a JSON list of configs or one JSON config a line: {e}") from None
    bad = [i for i, c in enumerate(configs) if not isinstance(c, dict)]
    if bad:
        raise UsageError(f"--enqueue {path}: entry {bad[0]} is not a config object (a dict of param values)")
    return configs


def check_configs(space: SearchSpace, configs: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The configs checked against ``space`` (``space.validate``); a bad one is a one-line error."""
    checked = []
    for i, config in enumerate(configs):
        try:
            checked.append(space.validate(config))
        except (TypeError, ValueError) as e:
            raise UsageError(f"--enqueue {source}: entry {i}: {e}") from None
    return checked


def enqueue_configs(tuner: Tuner, configs: list[dict[str, Any]], source: str) -> int:
    """Enqueue the configs not already run or queued (a rerun with the same file resumes); returns how
    many were enqueued. A bad config is a :class:`UsageError` naming its entry, and none is enqueued."""
    checked = check_configs(tuner.space, configs, source)
    observed = {o.trial_id for o in tuner.observed}
    done = [t.config for t in tuner.trials if t.metadata.get("source") == "enqueued" and t.id in observed]
    done += tuner.queued
    n = 0
    for config in checked:
        if config in done:
            done.remove(config)
        else:
            tuner.enqueue(config)
            n += 1
    return n


def _import_runs(tuner: Tuner, source: Tuner) -> None:
    for obs in source.observed:
        tuner.add(obs.config, loss=obs.loss, cost=obs.cost, failed=obs.failed, metadata=obs.metadata)


def save_snapshot(tuner: Tuner | dict[str, Any], folder: Path) -> None:
    """Write ``tuner.json`` (a tuner, or its ``state_dict()``): a cache beside the journal."""
    write_json_atomic(folder / TUNER_FILE, tuner if isinstance(tuner, dict) else tuner.state_dict())


def totals(tuner: Tuner) -> tuple[int, float]:
    """(finished trials, their total cost)."""
    return tuner.n_observations, float(sum(o.cost for o in tuner.observed))


def limits_reached(experiment: Experiment, n_done: int, spent: float, running: int = 0) -> str | None:
    """What limit the experiment has reached with ``n_done`` finished and ``running`` trials, if any."""
    if n_done + running >= experiment.trials:
        return f"{experiment.trials} trials"
    if experiment.budget is not None and spent >= experiment.budget:
        return f"the cost budget {experiment.budget:g} (spent {spent:.4g})"
    return None
