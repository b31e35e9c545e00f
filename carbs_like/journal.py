"""The journal: an append-only log of events in a folder, to rebuild a tuner after a crash.

This module is a storage backend, as Optuna's journal file backend is: it creates, appends, reads
and locks; it knows nothing of what the events mean. The :class:`~carbs_like.tuner.Tuner` writes
the header and the events and replays them (``Tuner.resume``, ``Tuner.read``).

.. code-block:: text

    runs/sweep/
      journal.jsonl   line 1: the header (format, version, created, and the writer's fields);
                      then one JSON object per event, written, flushed and fsync'd as it happens
      lock            who has the journal open (pid, host, time); an OS lock (flock) is held on it

Every event line is a JSON object with ``event`` and ``time`` (UTC, ISO 8601) and its data.

Crash safety:

* every event is one line written with a single ``write`` and ``fsync``'d before the call returns;
  a crash mid-write leaves at most a *torn last line*, which :meth:`Journal.open` ignores with a
  warning and cuts off, so later events append to a valid file;
* the header is written atomically (temp file, fsync, rename), so a journal always has one;
* a corrupt line before the last, a wrong format or an unknown version is a :class:`JournalError`
  naming the file, the line and the field; the journal is data (JSON), never code;
* two processes never write one journal: the ``lock`` file is held with ``fcntl.flock``, which the
  OS releases when its holder dies (even by ``kill -9``); the file names the holder for the error
  message. A lock left behind by a dead process is taken over with a warning. ``flock`` is POSIX
  only, and is not reliable across machines on some network file systems. :func:`read` reads a
  journal without the lock (a read-only view of a search another process is running).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._io import FormatError, check_header, dumps, loads, write_all, write_bytes_atomic

__all__ = [
    "JOURNAL_FILE",
    "JOURNAL_VERSION",
    "LOCK_FILE",
    "Journal",
    "JournalError",
    "JournalLockedError",
    "Record",
    "cut",
    "locate",
    "read",
    "read_lines",
]

JOURNAL_VERSION = 1
JOURNAL_FILE = "journal.jsonl"
# Where an experiment folder (``carbs-like tune --path``) keeps its journal; see :func:`locate`.
EXPERIMENT_SUBFOLDER = "journal"
LOCK_FILE = "lock"
FORMAT = "carbs_like.journal"

# A parsed line: (line number, the JSON object).
Record = tuple[int, dict[str, Any]]


class JournalError(FormatError):
    """A journal that cannot be read; the message names the file, line and field."""


class JournalLockedError(RuntimeError):
    """Another tuner (in this or another process) has the journal open; the message names it."""


class Journal:
    """An open journal folder: holds its lock and appends events. Made by :meth:`create` or
    :meth:`open`; :meth:`close` releases it."""

    def __init__(self, folder: Path, lock: "_Lock") -> None:
        self.folder = folder
        self.file = folder / JOURNAL_FILE
        self._lock = lock
        self._fd: int | None = os.open(self.file, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._failure: str | None = None
        self._finalizer = weakref.finalize(self, _close_fds, self._fd, lock)

    @classmethod
    def create(cls, folder: str | os.PathLike, header: Mapping[str, Any]) -> "Journal":
        """Start a new journal in ``folder`` (created if needed) with ``header`` as its first line
        (``format``, ``version`` and ``created`` are added).

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
        line = {"format": FORMAT, "version": JOURNAL_VERSION, "created": now(), **header}
        try:
            write_bytes_atomic(file, (dumps(line) + "\n").encode())
            return cls(folder, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, folder: str | os.PathLike) -> tuple["Journal", list[Record]]:
        """Take an existing journal to append to: its lock, its lines (header first) and a file
        that ends on a complete event (a torn last line is cut off, with a warning).

        Raises:
            FileNotFoundError: no journal in ``folder``.
            JournalLockedError: another tuner has the journal open.
            JournalError: a corrupt line before the last, or another format or version.
        """
        folder = locate(folder)
        file = _journal_file(folder)
        lock = _Lock.acquire(folder)
        try:
            records, good_size = _read_lines(file, repair=True)
            if good_size != file.stat().st_size:
                os.truncate(file, good_size)
            return cls(folder, lock), records
        except BaseException:
            lock.release()
            raise

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one event (``time`` is added), flush and fsync it.

        Raises:
            OSError: the write failed (e.g. a full disk). The file is cut back to its last complete
                event and this journal refuses further events: fix the cause, then ``Tuner.resume``.
            RuntimeError: the journal was closed, or an earlier write failed.
        """
        self.check_open()
        event = record.get("event", "?")
        data = (dumps({"event": event, "time": now(), **record}) + "\n").encode()
        try:
            write_all(self._fd, data)  # type: ignore[arg-type]
            os.fsync(self._fd)  # type: ignore[arg-type]
        except OSError as e:
            self._failure = f"{type(e).__name__}: {e}"
            with contextlib.suppress(OSError):  # if this fails too, the next resume cuts the torn line
                os.ftruncate(self._fd, self._size)  # type: ignore[arg-type]
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


def read(folder: str | os.PathLike) -> list[Record]:
    """The lines of a journal (header first), without taking its lock or changing the file: a
    read-only view, also of a journal another process is writing. A torn last line is left out.

    Raises:
        FileNotFoundError: no journal in ``folder``.
        JournalError: a corrupt line before the last, or another format or version.
    """
    records, _ = _read_lines(_journal_file(locate(folder)), repair=False)
    return records


def read_lines(folder: str | os.PathLike) -> tuple[list[Record], list[int], str | None]:
    """For a repair: the lines that parse, from the header up to the first that does not, the
    byte offset where each line ends, and the problem with the first bad line (None: all parse).

    Raises:
        FileNotFoundError: no journal in ``folder``.
    """
    raw = _journal_file(locate(folder)).read_bytes()
    records: list[Record] = []
    ends: list[int] = []
    offset = 0
    for i, piece in enumerate(raw.split(b"\n")):
        if offset >= len(raw):
            break
        try:
            obj = loads(piece.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except (UnicodeDecodeError, ValueError) as e:
            return records, ends, f"line {i + 1}: not a valid JSON object ({e})"
        offset += len(piece) + 1
        records.append((i + 1, obj))
        ends.append(min(offset, len(raw)))
    return records, ends, None


def cut(folder: str | os.PathLike, n_lines: int) -> Path:
    """Keep only the first ``n_lines`` lines of a journal (taking its lock), after copying the
    whole file to a backup beside it; returns the backup's path.

    Raises:
        JournalLockedError: another tuner has the journal open.
    """
    folder = locate(folder)
    file = _journal_file(folder)
    lock = _Lock.acquire(folder)
    try:
        raw = file.read_bytes()
        backup = file.with_name(f"{file.name}.{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.bak")
        write_bytes_atomic(backup, raw)
        lines = raw.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines[:n_lines])
        write_bytes_atomic(file, kept)
        return backup
    finally:
        lock.release()


def locate(folder: str | os.PathLike) -> Path:
    """The journal folder for ``folder``: itself, or its ``journal/`` subfolder when only that holds a
    journal (an experiment folder made by the ``carbs-like`` command), so both paths open the same
    search."""
    folder = Path(folder)
    if not (folder / JOURNAL_FILE).is_file() and (folder / EXPERIMENT_SUBFOLDER / JOURNAL_FILE).is_file():
        return folder / EXPERIMENT_SUBFOLDER
    return folder


def _journal_file(folder: Path) -> Path:
    file = folder / JOURNAL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no journal at {file}: start one with Tuner(space, path={str(folder)!r})")
    return file


def _close_fds(fd: int, lock: "_Lock") -> None:
    os.close(fd)
    lock.release()


def _read_lines(file: Path, *, repair: bool) -> tuple[list[Record], int]:
    """The parsed lines and the byte size of the valid part of the file; the header is checked.

    A last line that is not valid JSON (a crash mid-write) is dropped with a warning (``repair``:
    the caller cuts it off); anywhere else that is a :class:`JournalError`. With ``repair``, a
    complete last event whose newline was lost gets it back.
    """
    raw = file.read_bytes()
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the file ends with a newline, as it should
    parsed: list[Record] = []
    size = 0
    for i, piece in enumerate(pieces):
        lineno = i + 1
        try:
            obj = loads(piece.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            if i == len(pieces) - 1 and i > 0:
                if repair:
                    warnings.warn(
                        f"{file}: line {lineno} is torn (the process died while writing it: {e}); "
                        f"ignored it and cut the file back to its last complete event (line {lineno - 1})",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                break
            raise JournalError(f"{file}, line {lineno}: not valid JSON ({e}); the journal is corrupt") from None
        if not isinstance(obj, dict):
            raise JournalError(f"{file}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        parsed.append((lineno, obj))
        size += len(piece) + 1
    else:
        if repair and size > len(raw):  # a complete last event whose newline was lost: add it back
            with open(file, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
    if not parsed:
        raise JournalError(f"{file}: empty, no header line; it is not a carbs_like journal")
    try:
        check_header(parsed[0][1], format=FORMAT, version=JOURNAL_VERSION, where=f"{file}, line 1 (header)",
                     what="journal")
    except FormatError as e:
        raise JournalError(str(e)) from None
    return parsed, size


def now() -> str:
    """The time now, UTC, ISO 8601 with milliseconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


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
        me = {"pid": os.getpid(), "host": host, "time": now()}
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
