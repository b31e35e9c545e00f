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

__all__ = ["KINDS", "ZERO_GAP", "ChoiceParam", "LinearParam", "LogParam", "LogitParam", "Param"]

# How far (in nominal widths) an unbounded side may be searched beyond the nominal range.
_OPEN_SIDE_REACH = 1.0

# With ``LogParam(..., allow_zero=True)``, the value 0 sits this many nominal widths below min in
# search space; coordinates below the midpoint of that gap map back to exactly 0.
ZERO_GAP = 0.1


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
        if self.min is not None and value < self.min and not self._is_allowed_zero(value):
            raise ValueError(self._below_min_message(value))
        if self.max is not None and value > self.max:
            raise ValueError(f"{n}={value!r} is above its max {self.max:g}; fix the value or raise max")
        self._check_value(value)
        if self.integer:
            return int(round(value))
        return float(value)

    def _check_value(self, value: float) -> None:
        pass

    def _is_allowed_zero(self, value: float) -> bool:
        return False

    def _below_min_message(self, value: float) -> str:
        return f"{self.name}={value!r} is below its min {self.min:g}; fix the value or lower min"

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
        # A bounded side's limit is its bound (or 0's coordinate), so u beyond it means clamped.
        (lim_lo,), (lim_hi,) = self.limits()
        clamped = (self.min is not None and u < lim_lo - 1e-9) or (self.max is not None and u > lim_hi + 1e-9)
        return value, bool(clamped)

    def interval_from_transformed(self, t_lo: float, t_hi: float) -> tuple[float, float, list[str]]:
        """An interval ``[t_lo, t_hi]`` in transformed units -> the param's units, and the bounds
        it runs past (``"min=..."``, ``"max=..."``).

        Within the bounds the ends are rounded values (as :meth:`from_transformed`). An end past a
        bound is neither clamped nor rounded: clamping both ends made the interval of a relation that runs past a
        bound zero-width there (``[max, max]``), certain of a value the runs do not support. The
        result is the hull of the clamped and the unclamped interval, so it holds both the best
        value within the bounds (the clamped proposal) and the relation's optimum beyond them.
        """
        ends, beyond = [], []
        for t in (t_lo, t_hi):
            value, clamped = self.from_transformed(t)
            ends.append(value)
            if clamped:
                raw = float(self.untransform(t))
                side = "min" if self.min is not None and raw < self.min else "max"
                beyond.append(f"{side}={getattr(self, side)!r}")
                ends.append(raw)  # unrounded: an integer param's 0.3 says "below its min of 2" better than 0
        return min(ends), max(ends), sorted(set(beyond), reverse=True)

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

    With ``allow_zero=True`` (needs a ``min``) the param also takes exactly 0, for params such as
    weight decay whose sweeps include "off": 0 sits :data:`ZERO_GAP` nominal widths below
    ``log(min)`` in search space, and coordinates below the middle of that gap map back to 0.
    Values strictly between 0 and ``min`` stay invalid.

    Example:
        >>> LogParam("lr", center=1e-3)                 # unbounded, nominal 1e-3/30 .. 1e-3*30
        >>> LogParam("batch_size", min=8, max=4096, integer=True, multiple=8)
        >>> LogParam("weight_decay", min=1e-4, max=1.0, allow_zero=True)
    """

    allow_zero: bool = False

    kind: ClassVar[str] = "log"
    default_scale: ClassVar[float] = 30.0
    _min_scale: ClassVar[float] = 1.0

    def _check_domain(self) -> None:
        for key in ("min", "max", "center"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                raise ValueError(f"{self.name}: LogParam needs a positive {key}, got {v:g}")
        if not isinstance(self.allow_zero, bool):
            raise TypeError(f"{self.name}: allow_zero must be True or False, got {self.allow_zero!r}")
        if self.allow_zero and self.min is None:
            raise ValueError(
                f"{self.name}: allow_zero=True needs a min (0 is placed just below it), "
                f"e.g. LogParam({self.name!r}, min=1e-4, max=1.0, allow_zero=True)"
            )

    def _scale_t(self) -> float:
        return math.log(self.scale if self.scale is not None else self.default_scale)

    def _zero_t(self) -> tuple[float, float]:
        """0's transformed value and the threshold below which transformed values map back to 0."""
        lo = math.log(self.min)  # type: ignore[arg-type]  # allow_zero implies a min
        hi = math.log(self.max) if self.max is not None else math.log(self.center) + self._scale_t()  # type: ignore[arg-type]
        gap = ZERO_GAP * (hi - lo)
        return lo - gap, lo - 0.5 * gap

    def _t(self, x: Tensor) -> Tensor:
        if not self.allow_zero:
            return torch.log(x)
        zero, _ = self._zero_t()
        return torch.where(x == 0, torch.full_like(x, zero), torch.log(torch.where(x == 0, 1.0, x)))

    def _t_inv(self, z: Tensor) -> Tensor:
        if not self.allow_zero:
            return torch.exp(z)
        _, threshold = self._zero_t()
        return torch.where(z < threshold, torch.zeros_like(z), torch.exp(z))

    def _is_allowed_zero(self, value: float) -> bool:
        return self.allow_zero and value == 0

    def _below_min_message(self, value: float) -> str:
        if not self.allow_zero:
            hint = f"; to allow exactly 0 use LogParam({self.name!r}, min=..., allow_zero=True)" if value == 0 else ""
            return super()._below_min_message(value) + hint
        if value < 0:
            return f"{self.name}={value!r}: a LogParam value must be 0 (allow_zero) or positive, not negative"
        return (
            f"{self.name}={value!r} lies between 0 and its min {self.min:g}; with allow_zero=True it "
            f"takes exactly 0 or a value in [{self.min:g}, {self.max if self.max is not None else 'inf'}]: "
            f"use 0 for 'off', or lower min to {value:g} or below"
        )

    def _check_value(self, value: float) -> None:
        if value == 0 and self.allow_zero:
            return
        if value <= 0:
            hint = "" if value < 0 or self.min is None else (
                f"; to allow exactly 0 use LogParam({self.name!r}, min=..., allow_zero=True)"
            )
            raise ValueError(f"{self.name}={value!r}: a LogParam value must be positive{hint}")

    def limits(self) -> tuple[list[float], list[float]]:
        (lo,), hi = super().limits()
        return [-ZERO_GAP if self.allow_zero else lo], hi

    def _round_values(self, x: Tensor) -> Tensor:
        if not self.allow_zero:
            return super()._round_values(x)
        return torch.where(x == 0, x, super()._round_values(x))

    def _min_int(self) -> float:
        return float(self.multiple or 1)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.allow_zero:
            del out["allow_zero"]  # only when set, so older files stay byte-identical
        return out


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
