"""The journal: an append-only log of every ask / tell / add / forget, to resume after a crash.

``Tuner(space, path="runs/sweep")`` keeps a journal in the folder ``runs/sweep``:

.. code-block:: text

    runs/sweep/
      journal.jsonl   line 1: the header (format, version, space, settings, seed);
                      then one JSON object per event, written, flushed and fsync'd as it happens
      lock            who has the journal open (pid, host, time); an OS lock (flock) is held on it

Each event line is a JSON object with ``event`` and ``time`` (UTC, ISO 8601) and its data:

.. code-block:: text

    {"event": "ask", "time": ..., "trial": {"id", "config", "metadata"},
     "state": {"rng", "sobol_drawn", "next_id", "hyperparameters", "n_at_fit"}}
    {"event": "tell", "time": ..., "observation": {"trial_id", "config", "loss", "cost", "failed", "metadata"}}
    {"event": "add", "time": ..., "trial": {...}, "observation": {...}}
    {"event": "forget", "time": ..., "trial_id": 7}

``Tuner.resume("runs/sweep")`` replays the events and rebuilds the exact state: the same
observations, the pending trials (``tuner.pending``, which can be told, re-run or forgotten) and the
same next ``ask()`` the uninterrupted tuner would have made. Replaying does no model fitting: an
``ask`` event carries the dynamic state the ask left behind (random generator, Sobol position, GP
hyperparameters), so resuming is fast and exact.

Crash safety:

* every event is one line written with a single ``write`` and ``fsync``'d before the call returns;
  a crash mid-write leaves at most a *torn last line*, which ``resume`` ignores with a warning and
  cuts off, so later events append to a valid file;
* the header is written atomically (temp file, fsync, rename), so a journal always has one;
* a corrupt line before the last, a wrong format or an unknown version is a :class:`JournalError`
  naming the file, the line and the field; the journal is data (JSON), never code;
* two processes never write one journal: the ``lock`` file is held with ``fcntl.flock``, which the
  OS releases when its holder dies (even by ``kill -9``); the file names the holder for the error
  message. A lock left behind by a dead process is taken over with a warning. ``flock`` is POSIX
  only, and is not reliable across machines on some network file systems.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import numbers
import os
import socket
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .space import SearchSpace
from .trial import Observation, Trial

if TYPE_CHECKING:
    from .tuner import Tuner, TunerSettings

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_VERSION",
    "LOCK_FILE",
    "Journal",
    "JournalError",
    "JournalLockedError",
    "resume",
]

JOURNAL_VERSION = 1
JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "lock"
_FORMAT = "carbs_like.journal"
_EVENTS = ("ask", "tell", "add", "forget")


class JournalError(ValueError):
    """A journal (or checkpoint) that cannot be read; the message names the file, line and field."""


class JournalLockedError(RuntimeError):
    """Another tuner (in this or another process) has the journal open; the message names it."""


# ---------------------------------------------------------------------------------------------
# The open journal
# ---------------------------------------------------------------------------------------------
class Journal:
    """An open journal folder: holds its lock and appends events. Made by :meth:`create` or
    :func:`resume`; the Tuner calls :meth:`append` on every event and :meth:`close` when done."""

    def __init__(self, folder: Path, lock: "_Lock") -> None:
        self.folder = folder
        self.file = folder / JOURNAL_FILE
        self._lock = lock
        self._fd: int | None = os.open(self.file, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._failure: str | None = None
        self._finalizer = weakref.finalize(self, _close_fds, self._fd, lock)

    @classmethod
    def create(cls, folder: str | os.PathLike, tuner: "Tuner") -> "Journal":
        """Start a new journal for ``tuner`` in ``folder`` (created if needed).

        Raises:
            FileExistsError: ``folder`` already holds a journal (continue it with ``Tuner.resume``).
            JournalLockedError: another tuner has the folder open.
        """
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"path={str(folder)!r} is a file; a journal is a folder: give a folder")
        folder.mkdir(parents=True, exist_ok=True)
        lock = _Lock.acquire(folder)
        file = folder / JOURNAL_FILE
        if file.exists():
            lock.release()
            raise FileExistsError(
                f"{folder} already holds a journal ({JOURNAL_FILE}): continue it with "
                f"Tuner.resume({str(folder)!r}), or give a new folder to start a fresh search"
            )
        header = {
            "format": _FORMAT,
            "version": JOURNAL_VERSION,
            "created": _now(),
            "space": tuner.space.to_dict(),
            "settings": asdict(tuner.settings),
            "seed": tuner.seed,
        }
        try:
            _write_atomic(file, (json.dumps(header, allow_nan=False) + "\n").encode())
            return cls(folder, lock)
        except BaseException:
            lock.release()
            raise

    def append(self, event: str, tuner: "Tuner", **payload: Any) -> None:
        """Write one event, flush and fsync it. An ``ask`` event also records the tuner's dynamic
        state after the ask (see ``Tuner._dynamic_state``), so a replay needs no model fitting.

        Raises:
            OSError: the write failed (e.g. a full disk). The file is cut back to its last complete
                event and this journal refuses further events: fix the cause, then ``Tuner.resume``.
            RuntimeError: the journal was closed, or an earlier write failed.
        """
        self.check_open()
        record: dict[str, Any] = {"event": event, "time": _now(), **payload}
        if event == "ask":
            record["state"] = tuner._dynamic_state()
        data = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as e:
            self._failure = f"{type(e).__name__}: {e}"
            with contextlib.suppress(OSError):  # if this fails too, the next resume cuts the torn line
                os.ftruncate(self._fd, self._size)
            raise OSError(
                e.errno,
                f"could not journal the {event} event to {self.file} ({e.strerror}); the journal holds "
                f"every earlier event. Fix the cause (e.g. free disk space), then "
                f"Tuner.resume({str(self.folder)!r})",
            ) from e
        self._size += len(data)

    def check_open(self) -> None:
        """Raise a RuntimeError saying what to do if this journal takes no more events."""
        if self._fd is None or self._failure is not None:
            why = "it was closed" if self._failure is None else f"an earlier write failed ({self._failure})"
            raise RuntimeError(
                f"journal {self.folder} takes no more events: {why}. "
                f"Continue with Tuner.resume({str(self.folder)!r})"
            )

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Release the lock and the file. Idempotent."""
        if self._fd is not None:
            self._fd = None
            self._finalizer()


def _close_fds(fd: int, lock: "_Lock") -> None:
    os.close(fd)
    lock.release()


# ---------------------------------------------------------------------------------------------
# Resume: read, check and replay
# ---------------------------------------------------------------------------------------------
def resume(folder: str | os.PathLike, tuner_class: type["Tuner"] | None = None) -> "Tuner":
    """Rebuild a tuner from its journal folder and keep journaling to it (see ``Tuner.resume``).

    Raises:
        FileNotFoundError: no journal in ``folder``.
        JournalLockedError: another tuner has the journal open.
        JournalError: the journal is corrupt before its last line, or has an unknown version.
    """
    from .tuner import Tuner

    folder = Path(folder)
    file = folder / JOURNAL_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"no journal at {file}: start one with Tuner(space, path={str(folder)!r})"
        )
    lock = _Lock.acquire(folder)
    try:
        lines, good_size = _read_lines(file)
        tuner = _replay(tuner_class or Tuner, lines, file)
        if good_size != file.stat().st_size:
            os.truncate(file, good_size)
        tuner._journal = Journal(folder, lock)
    except BaseException:
        lock.release()
        raise
    return tuner


def _read_lines(file: Path) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """The parsed lines ``(line number, object)`` and the byte size of the valid part of the file.

    A last line that is not valid JSON (a crash mid-write) is dropped with a warning; anywhere
    else that is a :class:`JournalError`.
    """
    raw = file.read_bytes()
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the file ends with a newline, as it should
    parsed: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for i, piece in enumerate(pieces):
        lineno = i + 1
        try:
            obj = loads(piece.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            if i == len(pieces) - 1 and i > 0:
                warnings.warn(
                    f"{file}: line {lineno} is torn (the process died while writing it: {e}); "
                    f"ignored it and cut the file back to its last complete event (line {lineno - 1})",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return parsed, size
            raise JournalError(f"{file}, line {lineno}: not valid JSON ({e}); the journal is corrupt") from None
        if not isinstance(obj, dict):
            raise JournalError(f"{file}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        parsed.append((lineno, obj))
        size += len(piece) + 1
    if size > len(raw):  # a complete last event whose newline was lost: add it back
        with open(file, "ab") as f:
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
    return parsed, size


def _replay(tuner_class: type["Tuner"], lines: list[tuple[int, dict[str, Any]]], file: Path) -> "Tuner":
    if not lines:
        raise JournalError(f"{file}: empty, no header line; it is not a carbs_like journal")
    lineno, header = lines[0]
    tuner = _tuner_from_header(tuner_class, header, f"{file}, line {lineno} (header)")
    for lineno, record in lines[1:]:
        event = record.get("event")
        where = f"{file}, line {lineno}"
        if event not in _EVENTS:
            raise JournalError(f"{where}: field 'event' must be one of {list(_EVENTS)}, got {event!r}")
        _APPLY[event](tuner, record, f"{where} ({event} event)")
    return tuner


def _tuner_from_header(tuner_class: type["Tuner"], header: dict[str, Any], where: str) -> "Tuner":
    if header.get("format") != _FORMAT:
        raise JournalError(
            f"{where}: field 'format' is {header.get('format')!r}, not {_FORMAT!r}: not a carbs_like journal"
        )
    check_version(header.get("version"), JOURNAL_VERSION, where=where, what="journal")
    space = decode_space(header, where)
    settings = decode_settings(header, where)
    return tuner_class(space, seed=require_int(header, "seed", where), settings=settings)


def decode_space(data: Mapping[str, Any], where: str) -> SearchSpace:
    """The :class:`SearchSpace` in ``data["space"]``."""
    source = f"{where}: field 'space'"
    try:
        return SearchSpace.from_dict(require(data, "space", dict, where), source=source)
    except (TypeError, ValueError) as e:
        raise JournalError(str(e) if str(e).startswith(source) else f"{source}: {e}") from None


def decode_settings(data: Mapping[str, Any], where: str) -> "TunerSettings":
    """The :class:`TunerSettings` in ``data["settings"]``; unknown keys are an error."""
    from .tuner import TunerSettings

    settings = require(data, "settings", dict, where)
    known = {f.name for f in fields(TunerSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise JournalError(f"{where}: field 'settings' has unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return TunerSettings(**settings)
    except (TypeError, ValueError) as e:
        raise JournalError(f"{where}: field 'settings': {e}") from None


def check_version(version: Any, expected: int, *, where: str, what: str) -> None:
    """Raise a :class:`JournalError` saying what to do if ``version`` is not ``expected``."""
    if version == expected and not isinstance(version, bool):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > expected:
        hint = f"it was written by a newer carbs_like; upgrade carbs_like to read it"
    elif isinstance(version, int) and not isinstance(version, bool):
        hint = "it was written by an older carbs_like, which this one cannot read"
    else:
        hint = "the field is missing or not an int: the file is corrupt"
    raise JournalError(
        f"{where}: field 'version' is {version!r}, this carbs_like reads {what} version {expected}: {hint}"
    )


def _apply_ask(tuner: "Tuner", record: dict[str, Any], where: str) -> None:
    trial = decode_trial(require(record, "trial", dict, where), tuner.space, f"{where}: field 'trial'")
    if trial.id in tuner._trials:
        raise JournalError(f"{where}: field 'trial.id': trial {trial.id} appears twice")
    state = require(record, "state", dict, where)
    tuner._trials[trial.id] = trial
    tuner._pending[trial.id] = trial
    set_dynamic_state(tuner, state, where=f"{where}: field 'state'")
    if tuner._next_id <= trial.id:
        raise JournalError(f"{where}: field 'state.next_id' ({tuner._next_id}) must exceed trial id {trial.id}")


def _apply_tell(tuner: "Tuner", record: dict[str, Any], where: str) -> None:
    obs = decode_observation(require(record, "observation", dict, where), tuner, f"{where}: 'observation'")
    trial = tuner._pending.get(obs.trial_id)
    if trial is None:
        raise JournalError(f"{where}: field 'observation.trial_id': trial {obs.trial_id} is not pending there")
    if obs.config != trial.config:
        raise JournalError(f"{where}: field 'observation.config' differs from trial {obs.trial_id}'s config")
    del tuner._pending[obs.trial_id]
    tuner._store(obs)


def _apply_add(tuner: "Tuner", record: dict[str, Any], where: str) -> None:
    trial = decode_trial(require(record, "trial", dict, where), tuner.space, f"{where}: field 'trial'")
    obs = decode_observation(require(record, "observation", dict, where), tuner, f"{where}: 'observation'")
    if trial.id != tuner._next_id or obs.trial_id != trial.id or obs.config != trial.config:
        raise JournalError(
            f"{where}: field 'trial.id' / 'observation': expected trial {tuner._next_id} with the same "
            f"config in both, got trial {trial.id} and observation of {obs.trial_id}"
        )
    tuner._trials[trial.id] = trial
    tuner._next_id += 1
    tuner._store(obs)


def _apply_forget(tuner: "Tuner", record: dict[str, Any], where: str) -> None:
    trial_id = require_int(record, "trial_id", where)
    if trial_id not in tuner._pending:
        raise JournalError(f"{where}: field 'trial_id': trial {trial_id} is not pending there")
    del tuner._pending[trial_id]


_APPLY = {"ask": _apply_ask, "tell": _apply_tell, "add": _apply_add, "forget": _apply_forget}


# ---------------------------------------------------------------------------------------------
# Decoding records (shared with Tuner.from_state_dict)
# ---------------------------------------------------------------------------------------------
def decode_trial(data: Any, space: SearchSpace, where: str) -> Trial:
    """A :class:`Trial` from ``Trial.to_dict()`` data, its config checked against ``space``."""
    if not isinstance(data, Mapping):
        raise JournalError(f"{where}: expected an object, got {type(data).__name__}")
    config = require(data, "config", dict, where)
    try:
        config = space.validate(config)
    except (TypeError, ValueError) as e:
        raise JournalError(f"{where}: field 'config': {e}") from None
    metadata = dict(require(data, "metadata", dict, where))
    return Trial(id=require_int(data, "id", where), config=config, metadata=metadata)


def decode_observation(data: Any, tuner: "Tuner", where: str) -> Observation:
    """An :class:`Observation` from ``Observation.to_dict()`` data, checked as ``tell`` checks."""
    if not isinstance(data, Mapping):
        raise JournalError(f"{where}: expected an object, got {type(data).__name__}")
    for key in ("trial_id", "config", "loss", "cost", "failed", "metadata"):
        if key not in data:
            raise JournalError(f"{where}: missing field {key!r}")
    config = require(data, "config", dict, where)
    try:
        config = tuner.space.validate(config)
        obs = tuner._observation(
            require_int(data, "trial_id", where), config, data["loss"], data["cost"], data["failed"],
            require(data, "metadata", dict, where),
        )
    except (TypeError, ValueError) as e:
        raise JournalError(f"{where}: {e}") from None
    if obs.failed != data["failed"]:
        raise JournalError(f"{where}: field 'failed' is False but the loss is not finite")
    return obs


def set_dynamic_state(tuner: "Tuner", state: Any, *, where: str) -> None:
    """Check ``Tuner._dynamic_state()`` data and put it into ``tuner``."""
    if not isinstance(state, Mapping):
        raise JournalError(f"{where}: expected an object, got {type(state).__name__}")
    rng = _rng_state(require(state, "rng", dict, where), f"{where}.rng")
    sobol_drawn = require_int(state, "sobol_drawn", where)
    next_id = require_int(state, "next_id", where)
    n_at_fit = require_int(state, "n_at_fit", where)
    if "hyperparameters" not in state:
        raise JournalError(f"{where}: missing field 'hyperparameters'")
    hyper = _hyperparameters(state["hyperparameters"], f"{where}.hyperparameters")
    tuner._restore_dynamic_state(
        rng=rng, sobol_drawn=sobol_drawn, next_id=next_id, hyperparameters=hyper, n_at_fit=n_at_fit
    )


def _rng_state(data: dict[str, Any], where: str) -> dict[str, Any]:
    inner = data.get("state")
    ok = (
        data.get("bit_generator") == "PCG64"
        and isinstance(inner, dict)
        and all(_is_int(inner.get(k)) and 0 <= inner[k] < 2**128 for k in ("state", "inc"))
        and data.get("has_uint32") in (0, 1)
        and not isinstance(data.get("has_uint32"), bool)
        and _is_int(data.get("uinteger"))
        and 0 <= data["uinteger"] < 2**32
    )
    if not ok:
        raise JournalError(f"{where}: not a numpy PCG64 generator state")
    return data


def _hyperparameters(data: Any, where: str) -> dict[str, dict[str, list[float]]] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise JournalError(f"{where}: expected null or an object of models, got {data!r}"[:300])
    for model, params in data.items():
        if not isinstance(params, dict):
            raise JournalError(f"{where}.{model}: expected an object of parameter lists")
        for name, values in params.items():
            if not (isinstance(values, list) and all(_is_real(v) and math.isfinite(v) for v in values)):
                raise JournalError(f"{where}.{model}.{name}: expected a list of finite numbers")
    return data


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def require(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise JournalError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise JournalError(f"{where}: field {key!r} must be a {kind.__name__}, got {value!r}"[:300])
    return value


def require_int(data: Mapping[str, Any], key: str, where: str) -> int:
    if key not in data:
        raise JournalError(f"{where}: missing field {key!r}")
    value = data[key]
    if not _is_int(value) or value < 0:
        raise JournalError(f"{where}: field {key!r} must be a non-negative int, got {value!r}"[:300])
    return int(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no NaN or Infinity)")


def loads(text: str) -> Any:
    """``json.loads`` that rejects NaN / Infinity, which Python's json would otherwise accept."""
    return json.loads(text, parse_constant=_reject_constant)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(file: Path, data: bytes) -> None:
    """Write ``data`` to ``file`` atomically: a temp file in the same folder, fsync, rename."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, file)
    _fsync_dir(file.parent)


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------
class _Lock:
    """``folder/lock``, held with ``fcntl.flock`` (released by the OS if the holder dies) and
    naming its holder (pid, host, time) for the error message of anyone else who tries."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: Path) -> "_Lock":
        import fcntl

        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise JournalLockedError(
                f"{folder} is in use by another tuner ({holder}). Two tuners must not write one "
                "journal: close the other one (tuner.close()) or wait for it to finish"
            ) from None
        previous = _read_holder(fd)
        host = socket.gethostname()
        if previous and previous.get("host", host) != host:
            os.close(fd)
            raise JournalLockedError(
                f"{folder} was opened by a tuner on another machine ({_describe(previous)}) that did not "
                f"close it, and its lock cannot be checked from here. If that tuner is no longer running, "
                f"delete {path} and try again"
            )
        if previous:
            warnings.warn(
                f"{path}: took over a lock left behind by {_describe(previous)}, which is no longer "
                "running (it crashed or was killed)",
                RuntimeWarning,
                stacklevel=4,
            )
        me = {"pid": os.getpid(), "host": host, "time": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        return cls(path, fd)

    def release(self) -> None:
        """Empty the lock file (a clean exit) and drop the OS lock. Idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock


def _read_holder(fd: int) -> dict[str, Any] | None:
    text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"unreadable lock file": text[:80]}
    return data if isinstance(data, dict) else {"unreadable lock file": text[:80]}


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a process that has not written its name yet"
    if "unreadable lock file" in holder:
        return f"unknown holder: {holder['unreadable lock file']!r}"
    return f"pid {holder.get('pid')} on host {holder.get('host')!r}, since {holder.get('time')}"
