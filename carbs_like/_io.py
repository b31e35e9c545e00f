"""The one I/O layer: atomic writes, strict versioned loads, field checks, appended JSON lines.

Every on-disk format of carbs_like (tuner snapshot, journal, Ray searcher state, CLI experiment
file, verify log) is JSON written here: a whole file atomically (temp file in the same folder,
fsync, rename, fsync the folder) or one line at a time with a single ``write`` and ``fsync``. Every
file carries ``format`` and ``version``; a load checks both and every field it reads, and a problem
is a :class:`FormatError` that names the file, the line and the field, and says what to do.

Nothing here knows what a tuner is.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FormatError",
    "append_json_line",
    "check_header",
    "check_version",
    "dumps",
    "fsync_folder",
    "is_int",
    "is_real",
    "loads",
    "read_data_file",
    "read_json",
    "require",
    "require_int",
    "require_keys",
    "write_all",
    "write_bytes_atomic",
    "write_json_atomic",
]


class FormatError(ValueError):
    """A carbs_like file (or data from one) that cannot be read; the message names the file, the
    line and the field, and says what to do."""


# ----------------------------------------------------------------------------- writing ------
def dumps(data: Any, *, indent: int | None = None) -> str:
    """JSON text; NaN and infinity are refused (JSON has neither)."""
    if indent is None:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    return json.dumps(data, allow_nan=False, indent=indent)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_folder(folder: Path) -> None:
    """fsync a folder, so a rename inside it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a crash leaves the old file or the new, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as (indented) JSON to ``path`` atomically; see :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, (dumps(data, indent=1) + "\n").encode("utf-8"))


def append_json_line(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON object as a line, flushed and fsync'd before returning."""
    data = (dumps(dict(record)) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- reading ------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no NaN or Infinity)")


def loads(text: str) -> Any:
    """``json.loads`` that rejects NaN / Infinity, which Python's json would otherwise accept."""
    return json.loads(text, parse_constant=_reject_constant)


def read_json(path: str | os.PathLike, *, format: str, version: int, what: str) -> dict[str, Any]:
    """Read a whole JSON file written by :func:`write_json_atomic` and check its header.

    Args:
        path: the file.
        format: the expected value of its ``format`` field.
        version: the version this carbs_like reads.
        what: what the file is, for messages (e.g. ``"tuner checkpoint"``).

    Raises:
        FileNotFoundError: no such file.
        FormatError: not valid JSON, not an object, another format or version.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = loads(raw.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not a valid {what} (corrupt JSON at line {e.lineno}: {e.msg})") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{path}: not a valid {what} ({e})") from None
    check_header(data, format=format, version=version, where=str(path), what=what)
    return data


def read_data_file(path: str | os.PathLike) -> Any:
    """The data in a hand-written ``.toml``, ``.yaml``/``.yml`` or ``.json`` file (search spaces).

    TOML is read with ``tomllib`` (Python >= 3.11) or its backport ``tomli`` (Python 3.10).

    Raises:
        ValueError: the file does not parse (the message names it and the problem), or its
            extension is none of those.
    """
    path = Path(path)
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix == ".toml":
        toml = _toml_module()
        try:
            return toml.loads(text)
        except toml.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
    raise ValueError(f"{path}: unknown format {suffix!r}; use .toml, .yaml or .json")


def _toml_module() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the backport, a declared dependency there
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib


def check_header(data: Any, *, format: str, version: int, where: str, what: str) -> None:
    """Raise a :class:`FormatError` unless ``data`` is an object of this ``format`` and ``version``."""
    if not isinstance(data, dict) or data.get("format") != format:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise FormatError(f"{where}: not a carbs_like {what} (its 'format' is {got!r}, not {format!r})")
    check_version(data.get("version"), version, where=where, what=what)


def check_version(version: Any, expected: int, *, where: str, what: str) -> None:
    """Raise a :class:`FormatError` saying what to do if ``version`` is not ``expected``."""
    if version == expected and is_int(version):
        return
    if is_int(version) and version > expected:
        hint = "it was written by a newer carbs_like; upgrade carbs_like to read it"
    elif is_int(version):
        hint = "it was written by an older carbs_like, which this one cannot read"
    else:
        hint = "the field is missing or not an int: the file is corrupt"
    raise FormatError(f"{where}: field 'version' is {version!r}, this carbs_like reads {what} version {expected}: {hint}")


# ----------------------------------------------------------------------------- field checks -
def require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``data[key]``, which must exist and be of ``kind``."""
    if key not in data:
        raise FormatError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{where}: field {key!r} must be a {name}, got {value!r}"[:300])
    return value


def require_int(data: Mapping[str, Any], key: str, where: str, *, least: int = 0) -> int:
    """``data[key]``, which must be an int >= ``least``."""
    if key not in data:
        raise FormatError(f"{where}: missing field {key!r}")
    value = data[key]
    if not is_int(value) or value < least:
        raise FormatError(f"{where}: field {key!r} must be an int >= {least}, got {value!r}"[:300])
    return int(value)


def require_keys(data: Mapping[str, Any], known: set[str] | frozenset[str], where: str) -> None:
    """Refuse keys outside ``known`` (a misspelt field must not vanish silently)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise FormatError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")


def is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
