"""Params and the SearchSpace: the only place that translates param space <-> search space.

A *param space* value is what a user sees (``lr = 3e-4``). A *search space* coordinate is the
transformed, roughly unit-scaled value the models work in: each numeric param is mapped through
its transform (log for :class:`LogParam`, logit for :class:`LogitParam`, identity for
:class:`LinearParam`) and then affinely onto ``[0, 1]`` over its *nominal range* (its bounds, or
``center`` plus/minus ``scale`` for an unbounded param). Unbounded params may leave ``[0, 1]``:
the search can move beyond the nominal range, up to one nominal width on each open side. A
:class:`ChoiceParam` is one-hot encoded, one column per choice.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["ChoiceParam", "LinearParam", "LogParam", "LogitParam", "Param", "SearchSpace"]

# How far (in nominal widths) an unbounded side may be searched beyond the nominal range.
_OPEN_SIDE_REACH = 1.0


class Param:
    """Base class of all params. Subclasses are frozen dataclasses."""

    name: str
    kind: ClassVar[str]

    @property
    def width(self) -> int:
        """Number of search-space columns this param takes."""
        return 1

    def validate(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_search(self, values: Sequence[Any]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_params(self, U: Tensor) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def round(self, U: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def limits(self) -> tuple[list[float], list[float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]  # dataclass fields, not the ClassVars
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class _NumericParam(Param):
    """A real-valued param with a monotone transform ``t`` into search space.

    Args:
        name: the param's name, a key of every config.
        min: lower bound in param space (inclusive), or None for unbounded.
        max: upper bound in param space (inclusive), or None for unbounded.
        center: where an unbounded param is searched around; defaults to the middle of the
            bounds in transformed space.
        scale: half-width of the nominal range of an unbounded side: a factor for
            :class:`LogParam` (``center / scale .. center * scale``), an offset for
            :class:`LinearParam`, logit units for :class:`LogitParam`.
        integer: round values to integers (a multiple of ``multiple``).
        multiple: with ``integer=True``, round to this multiple (e.g. 8 for batch sizes).
    """

    name: str
    min: float | None = None
    max: float | None = None
    center: float | None = None
    scale: float | None = None
    integer: bool = False
    multiple: int | None = None

    default_scale: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        n = self.name
        if not isinstance(n, str) or not n:
            raise ValueError(f"param name must be a non-empty string, got {n!r}")
        for key in ("min", "max", "center", "scale"):
            v = getattr(self, key)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{n}: {key} must be a finite number, got {v!r}")
                object.__setattr__(self, key, float(v))
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"{n}: min ({self.min:g}) must be below max ({self.max:g}); swap them")
        if (self.min is None or self.max is None) and self.center is None:
            raise ValueError(
                f"{n}: give both min and max, or a center to search around (e.g. center=1e-3)"
            )
        if self.center is not None:
            lo_ok = self.min is None or self.center >= self.min
            hi_ok = self.max is None or self.center <= self.max
            if not (lo_ok and hi_ok):
                raise ValueError(
                    f"{n}: center {self.center:g} lies outside the bounds "
                    f"[{self.min}, {self.max}]; move center inside or widen the bounds"
                )
        if self.scale is not None and self.scale <= self._min_scale:
            raise ValueError(f"{n}: scale must be > {self._min_scale:g}, got {self.scale:g}")
        if not isinstance(self.integer, bool):
            raise TypeError(f"{n}: integer must be True or False, got {self.integer!r}")
        if self.multiple is not None:
            if not self.integer:
                raise ValueError(f"{n}: multiple={self.multiple} needs integer=True")
            if isinstance(self.multiple, bool) or int(self.multiple) != self.multiple or self.multiple < 1:
                raise ValueError(f"{n}: multiple must be a positive integer, got {self.multiple!r}")
            object.__setattr__(self, "multiple", int(self.multiple))
        self._check_domain()
        if self.integer:
            lo, hi = self._int_range()
            if lo > hi:
                raise ValueError(
                    f"{n}: no multiple of {self.multiple or 1} lies within [{self.min}, {self.max}]"
                )

    # --- transform, specialised by subclasses -------------------------------------------------
    _min_scale: ClassVar[float] = 0.0

    def _check_domain(self) -> None:
        pass

    def _t(self, x: Tensor) -> Tensor:
        return x

    def _t_inv(self, z: Tensor) -> Tensor:
        return z

    def _t1(self, x: float) -> float:
        return float(self._t(torch.tensor(x, dtype=torch.float64)))

    # --- nominal range -------------------------------------------------------------------------
    @property
    def nominal(self) -> tuple[float, float]:
        """The nominal range ``(lo, hi)`` in transformed units; it maps onto ``[0, 1]``."""
        lo = self._t1(self.min) if self.min is not None else None
        hi = self._t1(self.max) if self.max is not None else None
        if lo is not None and hi is not None:
            return lo, hi
        c = self._t1(self.center)  # type: ignore[arg-type]
        s = self._scale_t()
        return (lo if lo is not None else c - s), (hi if hi is not None else c + s)

    def _scale_t(self) -> float:
        return self.scale if self.scale is not None else self.default_scale

    def limits(self) -> tuple[list[float], list[float]]:
        """Hard search-space limits: ``[0, 1]`` on bounded sides, beyond on open sides."""
        lo = 0.0 if self.min is not None else -_OPEN_SIDE_REACH
        hi = 1.0 if self.max is not None else 1.0 + _OPEN_SIDE_REACH
        return [lo], [hi]

    def _int_range(self) -> tuple[float, float]:
        m = self.multiple or 1
        lo = math.ceil(self.min / m) * m if self.min is not None else -math.inf
        hi = math.floor(self.max / m) * m if self.max is not None else math.inf
        return lo, hi

    # --- conversions ---------------------------------------------------------------------------
    def validate(self, value: Any) -> float | int:
        n = self.name
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{n}: expected a number, got {value!r} ({type(value).__name__})")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{n}: expected a finite number, got {value!r}")
        if self.min is not None and value < self.min:
            raise ValueError(f"{n}={value!r} is below its min {self.min:g}; fix the value or lower min")
        if self.max is not None and value > self.max:
            raise ValueError(f"{n}={value!r} is above its max {self.max:g}; fix the value or raise max")
        self._check_value(value)
        if self.integer:
            return int(round(value))
        return float(value)

    def _check_value(self, value: float) -> None:
        pass

    def to_search(self, values: Sequence[Any]) -> Tensor:
        x = torch.tensor([float(v) for v in values], dtype=torch.float64)
        lo, hi = self.nominal
        return ((self._t(x) - lo) / (hi - lo)).unsqueeze(-1)

    def _from_search(self, u: Tensor) -> Tensor:
        lo, hi = self.nominal
        return self._t_inv(lo + u * (hi - lo))

    def _round_values(self, x: Tensor) -> Tensor:
        if self.min is not None or self.max is not None:
            x = x.clamp(
                min=self.min if self.min is not None else None,
                max=self.max if self.max is not None else None,
            )
        if self.integer:
            m = float(self.multiple or 1)
            lo, hi = self._int_range()
            x = (torch.round(x / m) * m).clamp(min=max(lo, self._min_int()), max=hi)
        return x

    def _min_int(self) -> float:
        return -math.inf

    def round(self, U: Tensor) -> Tensor:
        """Snap search coordinates (`... x 1`) to representable values (integers, bounds)."""
        if not self.integer:
            return U
        lo, hi = self.nominal
        x = self._round_values(self._from_search(U))
        return (self._t(x) - lo) / (hi - lo)

    def to_params(self, U: Tensor) -> list[float | int]:
        x = self._round_values(self._from_search(U[..., 0]))
        if self.integer:
            return [int(v) for v in x.tolist()]
        return [float(v) for v in x.tolist()]


@dataclass(frozen=True)
class LogParam(_NumericParam):
    """A positive param searched in log space (learning rates, sizes, batch sizes).

    Example:
        >>> LogParam("lr", center=1e-3)                 # unbounded, nominal 1e-3/30 .. 1e-3*30
        >>> LogParam("batch_size", min=8, max=4096, integer=True, multiple=8)
    """

    kind: ClassVar[str] = "log"
    default_scale: ClassVar[float] = 30.0
    _min_scale: ClassVar[float] = 1.0

    def _check_domain(self) -> None:
        for key in ("min", "max", "center"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                raise ValueError(f"{self.name}: LogParam needs a positive {key}, got {v:g}")

    def _scale_t(self) -> float:
        return math.log(self.scale if self.scale is not None else self.default_scale)

    def _t(self, x: Tensor) -> Tensor:
        return torch.log(x)

    def _t_inv(self, z: Tensor) -> Tensor:
        return torch.exp(z)

    def _check_value(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"{self.name}={value!r}: a LogParam value must be positive")

    def _min_int(self) -> float:
        return float(self.multiple or 1)


@dataclass(frozen=True)
class LinearParam(_NumericParam):
    """A real param searched on a linear scale (warmup fraction, momentum offsets, ...)."""

    kind: ClassVar[str] = "linear"

    def _scale_t(self) -> float:
        if self.scale is not None:
            return self.scale
        return max(abs(self.center or 0.0), 1.0)


@dataclass(frozen=True)
class LogitParam(_NumericParam):
    """A param in the open interval (0, 1) searched in logit space (dropout, 1 - beta2, ...).

    Bounds default to ``[1e-6, 1 - 1e-6]``-ish behaviour: values must lie strictly inside (0, 1).
    """

    kind: ClassVar[str] = "logit"
    default_scale: ClassVar[float] = 2.0

    def _check_domain(self) -> None:
        for key in ("min", "max", "center"):
            v = getattr(self, key)
            if v is not None and not 0.0 < v < 1.0:
                raise ValueError(f"{self.name}: LogitParam needs {key} strictly inside (0, 1), got {v:g}")

    def _t(self, x: Tensor) -> Tensor:
        return torch.logit(x)

    def _t_inv(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def _check_value(self, value: float) -> None:
        if not 0.0 < value < 1.0:
            raise ValueError(f"{self.name}={value!r}: a LogitParam value must lie strictly inside (0, 1)")


@dataclass(frozen=True)
class ChoiceParam(Param):
    """A categorical param, one-hot encoded in search space.

    Example:
        >>> ChoiceParam("schedule", ["cosine", "wsd"])
    """

    name: str
    choices: tuple[Any, ...] = field(default_factory=tuple)
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"param name must be a non-empty string, got {self.name!r}")
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Iterable):
            raise TypeError(f"{self.name}: choices must be a list, e.g. ['cosine', 'wsd']")
        choices = tuple(self.choices)
        if len(choices) < 1:
            raise ValueError(f"{self.name}: ChoiceParam needs at least one choice")
        for c in choices:
            if not isinstance(c, (str, int, float, bool)) or (isinstance(c, float) and not math.isfinite(c)):
                raise TypeError(f"{self.name}: choice {c!r} must be a str, int, float or bool (JSON data)")
        if len(set(map(_choice_key, choices))) != len(choices):
            raise ValueError(f"{self.name}: duplicate choices in {list(choices)}")
        object.__setattr__(self, "choices", choices)

    @property
    def width(self) -> int:
        return len(self.choices)

    def validate(self, value: Any) -> Any:
        key = _choice_key(value)
        for c in self.choices:
            if _choice_key(c) == key:
                return c
        raise ValueError(f"{self.name}={value!r} is not one of its choices {list(self.choices)}")

    def to_search(self, values: Sequence[Any]) -> Tensor:
        keys = [_choice_key(c) for c in self.choices]
        idx = torch.tensor([keys.index(_choice_key(v)) for v in values], dtype=torch.long)
        return torch.nn.functional.one_hot(idx, len(self.choices)).to(torch.float64)

    def round(self, U: Tensor) -> Tensor:
        idx = U.argmax(dim=-1)
        return torch.nn.functional.one_hot(idx, len(self.choices)).to(U)

    def to_params(self, U: Tensor) -> list[Any]:
        return [self.choices[i] for i in U.argmax(dim=-1).tolist()]

    def limits(self) -> tuple[list[float], list[float]]:
        return [0.0] * self.width, [1.0] * self.width

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "choices": list(self.choices)}


def _choice_key(v: Any) -> tuple[str, Any]:
    # bool is an int in Python; keep True and 1 distinct choices.
    return (type(v).__name__ if isinstance(v, bool) else "v", v)


_KINDS: dict[str, type[Param]] = {p.kind: p for p in (LogParam, LinearParam, LogitParam, ChoiceParam)}


class SearchSpace:
    """An ordered set of params, the scaling axes among them, and the search-space encoding.

    Args:
        params: the params, in the order of the search-space columns.
        scaling: names of the params that set the size of a run (model size, tokens, steps).
            Scaling laws extrapolate along them. Each must be a numeric param.

    Example:
        >>> space = SearchSpace([LogParam("n_params", min=1e6, max=3e7), LogParam("lr", center=1e-3)],
        ...                     scaling=["n_params"])
        >>> U = space.to_search([{"n_params": 5e6, "lr": 2e-3}])    # a `1 x 2` tensor
        >>> space.to_configs(U)[0]["lr"]
        0.002
    """

    def __init__(self, params: Sequence[Param], *, scaling: Sequence[str] = ()) -> None:
        params = tuple(params)
        if not params:
            raise ValueError("SearchSpace needs at least one param")
        for p in params:
            if not isinstance(p, Param):
                raise TypeError(f"SearchSpace takes Param objects (LogParam, ...), got {p!r}")
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate param names {dupes}: each param needs its own name")
        if isinstance(scaling, str):
            scaling = [scaling]
        if not isinstance(scaling, (list, tuple)) or not all(isinstance(s, str) for s in scaling):
            raise TypeError(f"scaling must be a list of param names, got {scaling!r}")
        by_name = {p.name: p for p in params}
        for s in scaling:
            if s not in by_name:
                raise ValueError(f"scaling axis {s!r} is not a param; params are {names}")
            if isinstance(by_name[s], ChoiceParam):
                raise ValueError(f"scaling axis {s!r} must be numeric (LogParam), not a ChoiceParam")
        if len(set(scaling)) != len(scaling):
            raise ValueError(f"scaling names repeated: {list(scaling)}")
        self.params: tuple[Param, ...] = params
        self.scaling: tuple[str, ...] = tuple(scaling)
        self._by_name = by_name
        slices, start = {}, 0
        for p in params:
            slices[p.name] = slice(start, start + p.width)
            start += p.width
        self._slices: dict[str, slice] = slices
        self.dim: int = start
        lo: list[float] = []
        hi: list[float] = []
        for p in params:
            a, b = p.limits()
            lo += a
            hi += b
        self.limits: Tensor = torch.tensor([lo, hi], dtype=torch.float64)
        """`2 x d` hard limits of search-space coordinates."""

    # --- introspection ---------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no param named {name!r}; params are {self.names}") from None

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.params)!r}, scaling={list(self.scaling)!r})"

    def columns(self, name: str) -> slice:
        """The search-space columns of param ``name``."""
        return self._slices[name]

    @property
    def scaling_columns(self) -> list[int]:
        return [self._slices[s].start for s in self.scaling]

    @property
    def categorical_columns(self) -> list[int]:
        return [i for p in self.params if isinstance(p, ChoiceParam) for i in range(
            self._slices[p.name].start, self._slices[p.name].stop)]

    # --- validation and conversion ---------------------------------------------------------
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a config has exactly the params, each valid; return the canonical dict.

        Raises:
            TypeError: ``config`` is not a mapping, or a value has the wrong type.
            ValueError: a param is missing, unknown, or out of bounds (the message names it).
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"a config must be a dict of param values, got {type(config).__name__}")
        missing = [n for n in self.names if n not in config]
        if missing:
            raise ValueError(f"config is missing param(s) {missing}; every config needs all of {self.names}")
        unknown = [k for k in config if k not in self._by_name]
        if unknown:
            raise ValueError(f"config has unknown param(s) {unknown}; the space has {self.names}")
        return {p.name: p.validate(config[p.name]) for p in self.params}

    def to_search(self, configs: Sequence[Mapping[str, Any]]) -> Tensor:
        """Encode configs as an `n x d` float64 tensor of search-space coordinates."""
        configs = [self.validate(c) for c in configs]
        if not configs:
            return torch.empty(0, self.dim, dtype=torch.float64)
        cols = [p.to_search([c[p.name] for c in configs]) for p in self.params]
        return torch.cat(cols, dim=-1)

    def to_configs(self, U: Tensor) -> list[dict[str, Any]]:
        """Decode an `n x d` tensor into n configs (rounded, clamped to bounds)."""
        U = self.round(U.reshape(-1, self.dim))
        per_param = {p.name: p.to_params(U[:, self._slices[p.name]]) for p in self.params}
        return [{n: per_param[n][i] for n in self.names} for i in range(U.shape[0])]

    def round(self, U: Tensor) -> Tensor:
        """Snap `... x d` coordinates to representable configs: clamp to limits, round integers
        to their multiple, one-hot choices. ``space.round(U)`` encodes ``to_configs(U)``."""
        U = torch.maximum(torch.minimum(U, self.limits[1]), self.limits[0])
        parts = [p.round(U[..., self._slices[p.name]]) for p in self.params]
        return torch.cat(parts, dim=-1)

    def keys(self, U: Tensor) -> list[tuple[float, ...]]:
        """Hashable identity of each (rounded) row, to find repeats of a config."""
        return [tuple(r) for r in torch.round(self.round(U) * 1e9).tolist()]

    # --- sampling --------------------------------------------------------------------------
    def sobol(self, n: int, *, seed: int, skip: int = 0) -> Tensor:
        """`n x d` scrambled-Sobol points over the nominal box, rounded; points ``skip..skip+n``
        of the sequence with this seed, so draws can continue across calls."""
        engine = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed)
        if skip:
            engine.fast_forward(skip)
        U = engine.draw(n, dtype=torch.float64)
        # One-hot choices: the largest coordinate of a choice's block wins (uniform over choices).
        return self.round(U)

    # --- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"params": [p.to_dict() for p in self.params], "scaling": list(self.scaling)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "search space") -> "SearchSpace":
        """Build a space from plain data (``{"params": [...], "scaling": [...]}``), as stored in
        checkpoints and in the TOML/YAML files of ``searchspaces/``."""
        if not isinstance(data, Mapping) or "params" not in data:
            raise ValueError(f"{source}: expected a table with a 'params' list")
        unknown = sorted(set(data) - {"params", "scaling"})
        if unknown:
            raise ValueError(f"{source}: unknown top-level key(s) {unknown}; a space has 'params' and 'scaling'")
        raw = data["params"]
        if isinstance(raw, Mapping):  # TOML/YAML style: {name: {kind: ..., ...}}
            bad = [k for k, v in raw.items() if not isinstance(v, Mapping)]
            if bad:
                raise ValueError(f"{source}: params {bad} must be tables (kind = ..., min = ..., ...)")
            raw = [{"name": k, **v} for k, v in raw.items()]
        if not isinstance(raw, list):
            raise ValueError(f"{source}: 'params' must be a list of tables, got {type(raw).__name__}")
        params: list[Param] = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping):
                raise ValueError(f"{source}: params[{i}] must be a table, got {entry!r}")
            entry = dict(entry)
            where = f"{source}: param {entry.get('name', i)!r}"
            kind = entry.pop("kind", None)
            if not isinstance(kind, str) or kind not in _KINDS:
                raise ValueError(f"{where}: 'kind' must be one of {sorted(_KINDS)}, got {kind!r}")
            cls_ = _KINDS[kind]
            allowed = {f.name for f in fields(cls_)}  # type: ignore[arg-type]
            extra = sorted(set(entry) - allowed)
            if extra:
                raise ValueError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")
            try:
                params.append(cls_(**entry))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{source}: {e}") from None
        scaling = data.get("scaling", [])
        try:
            return cls(params, scaling=scaling)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        """Load a space from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file (see ``searchspaces/``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"search space file {str(path)!r} does not exist")
        text = path.read_text()
        suffix = path.suffix.lower()
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML: {e}") from None
        elif suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML: {e}") from None
        elif suffix == ".json":
            import json

            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON: {e}") from None
        else:
            raise ValueError(f"{path}: unknown format {suffix!r}; use .toml, .yaml or .json")
        return cls.from_dict(data, source=str(path))
