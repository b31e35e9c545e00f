"""The SearchSpace: an ordered set of params, the scaling axes among them, and the encoding of
whole configs as search-space tensors (and back). With :mod:`carbs_like.params` it is the only
place that translates param space <-> search space; see there for the units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._io import read_data_file
from .params import KINDS, ChoiceParam, LinearParam, LogitParam, LogParam, Param

__all__ = ["ChoiceParam", "LinearParam", "LogParam", "LogitParam", "Param", "SearchSpace"]


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

    def scaling_coordinates(self, values: Mapping[str, float]) -> dict[int, float]:
        """Search coordinates of scaling-axis values, also far outside the searched bounds:
        ``{column: coordinate}`` (e.g. a target model size for the acquisition)."""
        unknown = sorted(set(values) - set(self.scaling))
        if unknown:
            raise ValueError(f"{unknown} are not scaling axes of this space; its scaling axes are {list(self.scaling)}")
        out = {}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r}: a scaling-axis value must be a positive finite number")
            out[self._slices[name].start] = float(self[name].to_search([value])[0, 0])
        return out

    def transformed(self, U: Tensor, name: str) -> Any:
        """`n` transformed values (log lr, ...) of numeric param ``name`` at `n x d` search
        coordinates, as a numpy array."""
        p = self[name]
        if isinstance(p, ChoiceParam):
            raise TypeError(f"{name} is a ChoiceParam: it has no transformed scale")
        return p.search_to_transformed(U[:, self._slices[name].start])

    def choice_index(self, U: Tensor, name: str) -> Any:
        """`n` indices of ChoiceParam ``name``'s value at `n x d` search coordinates (numpy)."""
        return U[:, self._slices[name]].argmax(dim=-1).numpy()

    def log_scales(self, U: Tensor) -> Any:
        """`n x k` natural logs of the scaling axes' values at `n x d` search coordinates (numpy).

        Raises:
            ValueError: a LinearParam scaling axis takes a non-positive value (no log of a size).
        """
        import numpy as np

        cols = []
        for name in self.scaling:
            t = self.transformed(U, name)
            if isinstance(self[name], LogParam):
                cols.append(t)
                continue
            values = self[name].untransform(t)
            if (values <= 0).any():
                raise ValueError(f"scaling axis {name!r} has non-positive values; a scaling law needs positive sizes")
            cols.append(np.log(values))
        return np.stack(cols, axis=-1) if cols else np.zeros((U.shape[0], 0))

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
            if not isinstance(kind, str) or kind not in KINDS:
                raise ValueError(f"{where}: 'kind' must be one of {sorted(KINDS)}, got {kind!r}")
            cls_ = KINDS[kind]
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
        data = read_data_file(path)
        return cls.from_dict(data, source=str(path))
