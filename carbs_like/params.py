"""Params: one search-space dimension each, and its translation param space <-> search space.

A *param space* value is what a user sees (``lr = 3e-4``). A *search space* coordinate is the
transformed, roughly unit-scaled value the models work in: each numeric param is mapped through
its transform (log for :class:`LogParam`, logit for :class:`LogitParam`, identity for
:class:`LinearParam`) and then affinely onto ``[0, 1]`` over its *nominal range* (its bounds, or
``center`` plus/minus ``scale`` for an unbounded param). Unbounded params may leave ``[0, 1]``:
the search can move beyond the nominal range, up to one nominal width on each open side. A
:class:`ChoiceParam` is one-hot encoded, one column per choice.

:class:`~carbs_like.space.SearchSpace` puts params together; the two modules are the only place
that translates between param space and search space.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["KINDS", "ChoiceParam", "LinearParam", "LogParam", "LogitParam", "Param"]

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

    # --- the transformed scale (what scaling relations are linear in) -----------------------
    def transform(self, values: Any) -> Any:
        """Param values -> transformed units (log for LogParam, logit for LogitParam, identity for
        LinearParam); arrays in, arrays out."""
        return self._t(torch.as_tensor(values, dtype=torch.float64)).numpy()

    def untransform(self, t: Any) -> Any:
        """Transformed units -> param values, unrounded and unclamped (the inverse of ``transform``)."""
        return self._t_inv(torch.as_tensor(t, dtype=torch.float64)).numpy()

    def search_to_transformed(self, u: Any) -> Any:
        """Search coordinates of this param's column -> transformed units."""
        lo, hi = self.nominal
        return lo + torch.as_tensor(u, dtype=torch.float64).numpy() * (hi - lo)

    def from_transformed(self, t: float) -> tuple[float | int, bool]:
        """A transformed value -> the param's value (rounded, within its bounds) and whether it had
        to be clamped to a bound to get there."""
        lo, hi = self.nominal
        u = (float(t) - lo) / (hi - lo)
        value = self.to_params(torch.tensor([[u]], dtype=torch.float64))[0]
        # A bounded side's nominal end is the bound itself, so u outside [0, 1] there means clamped.
        clamped = (self.min is not None and u < -1e-9) or (self.max is not None and u > 1 + 1e-9)
        return value, bool(clamped)

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


KINDS: dict[str, type[Param]] = {p.kind: p for p in (LogParam, LinearParam, LogitParam, ChoiceParam)}
