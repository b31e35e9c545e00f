"""Surrogate models fitted from observations: a loss GP, a log-cost GP and a failure model.

All tensors are float64 search-space coordinates (see :mod:`carbs_like.space`); this module
never sees param names. The GPs are BoTorch ``SingleTaskGP``s with BoTorch's default
(dimension-scaled) priors and ARD lengthscales, fitted by maximising the marginal likelihood.

* **loss**: fitted on successful observations, after a monotone warp
  ``w(y) = log(y - min(y) + delta)`` that spreads out the near-optimal losses and compresses the
  tail of bad runs, then standardised; delta (a multiple of median - min) is chosen at each refit
  by the likelihood of the observed losses (``WARP_SPREAD_MULTIPLES``).
* **log cost**: cost is usually a product of powers of the scaling axes, i.e. linear in search
  coordinates, so its GP has a linear mean and a stationary residual.
* **failure**: a kernel-weighted Beta posterior of the failure rate around each point, using the
  loss GP's lengthscales (halved) so that it is sharp along the dimensions that matter.

Refitting from scratch on every ask is wasteful: :func:`fit_surrogate` takes the hyperparameters of
the previous fit as a warm start, or reuses them unchanged (``refit=False``), and fits on at most
``max_fit_points`` observations (the best quarter plus a random rest) while conditioning on all.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from .trial import ObservedData

__all__ = ["Surrogate", "fit_surrogate"]

# Losses beyond this magnitude are clipped for the loss model: the warp's ``y - shift`` must stay
# inside the float64 range (about 1.8e308), or it overflows to inf and the GP sees NaN.
_LOSS_LIMIT = 1e300
# The warps the loss GP chooses among, as multiples of the losses' median - min (see LossWarp):
# a strong one for long-tailed losses (diverging runs, a few bad configs far above the rest) and a
# nearly linear one for smooth objectives. A refit picks the one under which the observed losses
# (not their warped values: the Jacobian is counted) are most likely, as in warped GPs (Snelson
# et al. 2004); between refits the choice is kept with the GP hyperparameters.
WARP_SPREAD_MULTIPLES = (1.0, 100.0)


@dataclass(frozen=True)
class LossWarp:
    """The monotone warp ``w(y) = log(y - shift)``, then standardisation to zero mean, unit std."""

    shift: float
    mean: float
    std: float

    @classmethod
    def fit(cls, y: Tensor, spread_multiple: float = 1.0) -> "LossWarp":
        """The warp with ``delta = spread_multiple x (median - min)``: 1 spreads out the best half
        and compresses the tail; a large multiple is close to plain standardisation."""
        lo = float(y.min())
        spread = float(y.median()) - lo
        delta = spread_multiple * max(spread, 1e-6 * max(abs(lo), 1.0))
        shift = lo - delta
        z = torch.log(y - shift)
        std = float(z.std()) if z.numel() > 1 else 1.0
        return cls(shift=shift, mean=float(z.mean()), std=std if std > 1e-12 else 1.0)

    def __call__(self, y: Tensor) -> Tensor:
        # Values at or below the shift (better than anything seen) map far into the good tail.
        y = y.clamp(-_LOSS_LIMIT, _LOSS_LIMIT)
        z = torch.log((y - self.shift).clamp_min(1e-300))
        return (z - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        return torch.exp(z * self.std + self.mean) + self.shift

    def log_jacobian(self, y: Tensor) -> Tensor:
        """``sum log |dw/dy|`` over ``y``: what turns a density of warped losses into one of losses."""
        return -(torch.log((y - self.shift).clamp_min(1e-300)) + math.log(self.std)).sum()


@dataclass(frozen=True)
class Standardizer:
    mean: float
    std: float

    @classmethod
    def fit(cls, y: Tensor) -> "Standardizer":
        std = float(y.std()) if y.numel() > 1 else 1.0
        return cls(mean=float(y.mean()), std=std if std > 1e-12 else 1.0)

    def __call__(self, y: Tensor) -> Tensor:
        return (y - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        return z * self.std + self.mean


def _linear_mean(columns: Sequence[int]):
    """A constant plus a linear trend along ``columns`` of the input (the scaling axes for loss,
    every column for log cost)."""
    from gpytorch.means import Mean

    class LinearMeanOn(Mean):
        def __init__(self) -> None:
            super().__init__()
            self.columns = list(columns)
            self.register_parameter("weights", torch.nn.Parameter(torch.zeros(len(self.columns), 1, dtype=torch.float64)))
            self.register_parameter("bias", torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)))

        def forward(self, x: Tensor) -> Tensor:
            return (x[..., self.columns] @ self.weights).squeeze(-1) + self.bias

    return LinearMeanOn()


def _gp(X: Tensor, Y: Tensor, *, linear_columns: Sequence[int] = ()):
    from botorch.models import SingleTaskGP

    mean = _linear_mean(linear_columns) if len(linear_columns) else None
    with warnings.catch_warnings():
        # Outcomes are standardised here already; imputed failures shift them slightly.
        warnings.simplefilter("ignore", category=_input_data_warning())
        return SingleTaskGP(X, Y.unsqueeze(-1), mean_module=mean, outcome_transform=None)


def _input_data_warning() -> type[Warning]:
    from botorch.exceptions.warnings import InputDataWarning

    return InputDataWarning


def _hyperparameters(model) -> dict[str, list[float]]:
    return {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters()}


def _load_hyperparameters(model, hyper: dict[str, list[float]] | None) -> bool:
    """Copy saved raw hyperparameters into ``model``; False if they do not fit its shapes."""
    if not hyper:
        return False
    params = dict(model.named_parameters())
    if set(params) != set(hyper) or any(params[n].numel() != len(v) for n, v in hyper.items()):
        return False
    with torch.no_grad():
        for n, v in hyper.items():
            params[n].copy_(torch.tensor(v, dtype=params[n].dtype).reshape(params[n].shape))
    return True


def _optimize(model, *, maxiter: int, seed: int) -> str | None:
    """Maximise the exact marginal likelihood with L-BFGS-B; return a problem note or None."""
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from linear_operator.utils.errors import NanError, NotPSDError

    before = _hyperparameters(model)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    note = None
    try:
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)  # inside fork_rng: the global generator is restored after
            warnings.simplefilter("ignore")
            result = fit_gpytorch_mll_scipy(mll, options={"maxiter": maxiter})
        if not math.isfinite(float(result.fval)):
            note = "marginal likelihood not finite"
    except (NotPSDError, NanError, RuntimeError, ValueError) as e:
        # RuntimeError/ValueError: torch's Cholesky and scipy's L-BFGS-B on non-finite values.
        note = f"{type(e).__name__}: {e}"
    if note is not None:
        _load_hyperparameters(model, before)
        note += "; kept the previous hyperparameters"
    mll.eval()
    return note


def _fit_subset(n: int, loss: Tensor, *, max_points: int, generator: torch.Generator) -> Tensor:
    """Indices of at most ``max_points`` observations: the best quarter and a random rest."""
    if n <= max_points:
        return torch.arange(n)
    n_best = max_points // 4
    order = torch.argsort(loss)
    best = order[:n_best]
    rest = order[n_best:]
    pick = rest[torch.randperm(rest.numel(), generator=generator)[: max_points - n_best]]
    return torch.sort(torch.cat([best, pick])).values


class ExactPredictor:
    """The exact posterior of a fitted ``SingleTaskGP``, for many candidates at once.

    BoTorch's ``posterior(X)`` builds the joint `m x m` covariance of `m` candidates (and GPyTorch
    switches to iterative solves past 800 training points); acquisition needs only the marginal
    mean and variance of each. This evaluates the model's own fitted mean and kernel modules
    against one cached Cholesky factor of ``K + noise I``: `O(n^2 m)` per call, exact.
    """

    def __init__(self, model) -> None:
        self.model = model
        X = model.train_inputs[0]
        y = model.train_targets
        with torch.no_grad():
            K = model.covar_module(X).to_dense()
            noise = model.likelihood.noise.reshape(-1)[0]
            K = K + noise * torch.eye(X.shape[0], dtype=X.dtype)
            self.L, jitter = _cholesky(K)
            resid = (y - model.mean_module(X)).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(resid, self.L).squeeze(-1)
        self.X = X
        self.jitter = jitter

    def mean(self, C: Tensor) -> Tensor:
        """Posterior mean at `m x d` points (`m`)."""
        with torch.no_grad():
            return self.model.mean_module(C) + self.model.covar_module(C, self.X).to_dense() @ self.alpha

    def mean_std(self, C: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and std (of the latent function) at `m x d` points (`m`, `m`)."""
        with torch.no_grad():
            Ks = self.model.covar_module(C, self.X).to_dense()  # m x n
            mean = self.model.mean_module(C) + Ks @ self.alpha
            v = torch.linalg.solve_triangular(self.L, Ks.T, upper=False)  # n x m
            prior = self.model.covar_module(C[:1], C[:1]).to_dense().reshape(-1)[0]  # stationary
            var = (prior - (v**2).sum(0)).clamp_min(1e-18)
        return mean, var.sqrt()


    def paired_covariance(self, A: Tensor, B: Tensor) -> Tensor:
        """Posterior covariances between `... x d` points ``A`` and ``B`` pairwise (``A[i]`` with
        ``B[i]``), for many pairs at once (`...`)."""
        shape = A.shape[:-1]
        A2, B2 = A.reshape(-1, A.shape[-1]), B.reshape(-1, B.shape[-1])
        with torch.no_grad():
            vA = torch.linalg.solve_triangular(self.L, self.model.covar_module(self.X, A2).to_dense(), upper=False)
            vB = torch.linalg.solve_triangular(self.L, self.model.covar_module(self.X, B2).to_dense(), upper=False)
            prior = self.model.covar_module(A2, B2, diag=True)
            prior = prior.to_dense() if hasattr(prior, "to_dense") else prior
            return (prior - (vA * vB).sum(0)).reshape(shape)


def _cholesky(K: Tensor) -> tuple[Tensor, float]:
    """Cholesky factor of a PSD matrix, adding the smallest jitter that makes it succeed."""
    jitter = 0.0
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(K + jitter * torch.eye(K.shape[0], dtype=K.dtype))
        if int(info) == 0:
            return L, jitter
        jitter = 1e-9 if jitter == 0.0 else jitter * 100
    raise NotPSDError(f"kernel matrix is not positive definite even with jitter {jitter:g}")


@dataclass
class Surrogate:
    """The fitted models. Predictions are for `m x d` candidates and return `m` tensors.

    The loss is predicted in *warped, standardised units* (see :class:`LossWarp`): lower is better,
    and ``warp`` maps raw losses into the same units.
    """

    X_train: Tensor
    z_train: Tensor
    loss_model: Any | None
    warp: LossWarp | None
    cost_model: Any | None
    cost_scale: Standardizer | None
    X_all: Tensor
    failed: Tensor
    fail_lengthscale: Tensor
    loss_linear_columns: Sequence[int] = ()
    hyperparameters: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _predictors: dict[str, ExactPredictor] = field(default_factory=dict, repr=False)

    def loss(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and std of the warped loss at `m x d` points (`m`, `m`)."""
        if self.loss_model is None:
            return torch.zeros(X.shape[0], dtype=X.dtype), torch.ones(X.shape[0], dtype=X.dtype)
        return self._predictor("loss").mean_std(X)

    def loss_covariance(self, A: Tensor, B: Tensor) -> Tensor:
        """Posterior covariances of the warped loss between pairs of points ``A[i]``, ``B[i]``
        (`... x d` each; `...` out)."""
        if self.loss_model is None:
            return torch.zeros(A.shape[:-1], dtype=A.dtype)
        return self._predictor("loss").paired_covariance(A, B)

    @property
    def loss_noise(self) -> float:
        """The loss GP's fitted noise variance (warped, standardised units)."""
        if self.loss_model is None:
            return 1.0
        return float(self.loss_model.likelihood.noise.detach().reshape(-1)[0])

    def _predictor(self, which: str) -> ExactPredictor:
        cache = self._predictors
        if which not in cache:
            cache[which] = ExactPredictor(self.loss_model if which == "loss" else self.cost_model)
        return cache[which]

    def log_cost(self, X: Tensor) -> Tensor:
        """Predicted log cost at `m x d` points (`m`)."""
        if self.cost_model is None:
            return torch.zeros(X.shape[0], dtype=X.dtype)
        z = self._predictor("cost").mean(X)
        return self.cost_scale.inverse(z)  # type: ignore[union-attr]

    def p_success(self, X: Tensor) -> Tensor:
        """Probability that a run at each of `m x d` points finishes without failing (`m`)."""
        n = self.failed.numel()
        n_fail = float(self.failed.sum())
        if n_fail == 0:
            return torch.ones(X.shape[0], dtype=X.dtype)
        rate = (n_fail + 1.0) / (n + 2.0)
        # m x n squared scaled distances, without an m x n x d intermediate (memory at large n).
        sq = torch.cdist(X / self.fail_lengthscale, self.X_all / self.fail_lengthscale).square()
        k = torch.exp(-0.5 * sq)
        fails = (k * self.failed.to(X)).sum(-1)
        total = k.sum(-1)
        prior = 1.0  # pseudo-observations of the global failure rate
        return 1.0 - (prior * rate + fails) / (prior + total)

    def with_pending(self, X_pending: Tensor) -> "Surrogate":
        """Kriging believer: condition the loss GP on its own mean at pending points, so the
        uncertainty there collapses and parallel asks move elsewhere."""
        if self.loss_model is None or X_pending.shape[0] == 0:
            return self
        mean, _ = self.loss(X_pending)
        X = torch.cat([self.X_train, X_pending])
        z = torch.cat([self.z_train, mean])
        model = _gp(X, z, linear_columns=self.loss_linear_columns)
        _load_hyperparameters(model, self.hyperparameters.get("loss"))
        model.eval()
        return Surrogate(
            X_train=X, z_train=z, loss_model=model, warp=self.warp, cost_model=self.cost_model,
            cost_scale=self.cost_scale, X_all=self.X_all, failed=self.failed,
            fail_lengthscale=self.fail_lengthscale, loss_linear_columns=self.loss_linear_columns,
            hyperparameters=self.hyperparameters,
            notes=self.notes,
            _predictors={k: v for k, v in self._predictors.items() if k == "cost"},
        )


def fit_surrogate(
    data: ObservedData,
    *,
    scaling_columns: Sequence[int] = (),
    hyperparameters: dict[str, dict[str, list[float]]] | None = None,
    refit: bool = True,
    max_fit_points: int = 256,
    maxiter: int = 75,
    seed: int = 0,
) -> Surrogate:
    """Fit (or re-condition) the loss GP, the log-cost GP and the failure model.

    Args:
        data: the observations.
        scaling_columns: columns of the scaling axes; the loss GP's mean is linear along them
            (loss falls steadily with scale, so the model extrapolates that trend, not a constant).
        hyperparameters: raw GP hyperparameters from an earlier fit (``Surrogate.hyperparameters``),
            used as a warm start, or as they are when ``refit`` is False.
        refit: optimise the hyperparameters; otherwise only condition on the new data.
        max_fit_points: fit hyperparameters on at most this many observations.
        maxiter: L-BFGS-B iterations per GP.
        seed: seeds the (rare) random parts of fitting; the global torch RNG is left untouched.

    Returns:
        The fitted :class:`Surrogate`. Numerical problems are not hidden: a failed fit keeps the
        previous hyperparameters and says so in ``Surrogate.notes``.
    """
    hyper = hyperparameters or {}
    generator = torch.Generator().manual_seed(seed)
    notes: list[str] = []
    ok = data.ok
    X_ok, y_ok = data.X[ok], data.loss[ok]
    new_hyper: dict[str, dict[str, list[float]]] = {}

    loss_model = warp = None
    X_fit = torch.empty(0, data.X.shape[-1], dtype=torch.float64)
    z_fit = torch.empty(0, dtype=torch.float64)
    if X_ok.shape[0] >= 2:
        clipped = int((y_ok.abs() > _LOSS_LIMIT).sum())
        if clipped:
            notes.append(
                f"loss model: {clipped} loss(es) beyond +-{_LOSS_LIMIT:g} clipped to it "
                "(larger ones overflow the loss warp)"
            )
            y_ok = y_ok.clamp(-_LOSS_LIMIT, _LOSS_LIMIT)
        kept = (hyper.get("loss_warp") or {}).get("spread_multiple")
        multiples = WARP_SPREAD_MULTIPLES if refit or not kept else (kept[0],)
        best = None
        for multiple in multiples:
            warp_m = LossWarp.fit(y_ok, multiple)
            z_ok = warp_m(y_ok)
            # Failed runs enter the loss GP at the worst observed loss: the model then steers away
            # from failing regions by itself, and learns short lengthscales along the params that
            # cause failures (which the failure model below reuses).
            z_fail = torch.full((int(data.failed.sum()),), float(z_ok.max()), dtype=torch.float64)
            X_m = torch.cat([X_ok, data.X[data.failed]])
            z_m = torch.cat([z_ok, z_fail])
            model_m, note_m = _fit_one(
                X_m, z_m, hyper.get("loss"), refit=refit, linear_columns=list(scaling_columns),
                max_fit_points=max_fit_points, maxiter=maxiter, generator=generator, sort_by=z_m,
                seed=seed,
            )
            evidence = 0.0
            if len(multiples) > 1:  # the density of the losses themselves, so the warps compare
                evidence = _log_evidence(model_m, X_m, z_m) + float(warp_m.log_jacobian(y_ok))
            if best is None or evidence > best[0]:
                best = (evidence, multiple, warp_m, X_m, z_m, model_m, note_m)
        _, multiple, warp, X_fit, z_fit, loss_model, note = best
        if note:
            notes.append(f"loss GP: {note}")
        new_hyper["loss"] = _hyperparameters(loss_model)
        new_hyper["loss_warp"] = {"spread_multiple": [multiple]}

    cost_model = cost_scale = None
    use = ok if int(ok.sum()) >= 2 else torch.ones_like(ok)
    if int(use.sum()) >= 2:
        log_cost = torch.log(data.cost[use])
        cost_scale = Standardizer.fit(log_cost)
        cost_model, note = _fit_one(
            data.X[use], cost_scale(log_cost), hyper.get("cost"), refit=refit,
            linear_columns=list(range(data.X.shape[-1])),
            max_fit_points=max_fit_points, maxiter=maxiter, generator=generator,
            sort_by=None,
        )
        if note:
            notes.append(f"cost GP: {note}")
        new_hyper["cost"] = _hyperparameters(cost_model)

    if loss_model is not None:
        ls = loss_model.covar_module.lengthscale.detach().reshape(-1)
        fail_ls = (0.5 * ls).clamp(0.05, 1.0)
    else:
        fail_ls = torch.full((data.X.shape[-1],), 0.2, dtype=torch.float64)

    return Surrogate(
        X_train=X_fit, z_train=z_fit, loss_model=loss_model, warp=warp, cost_model=cost_model,
        cost_scale=cost_scale, X_all=data.X, failed=data.failed, fail_lengthscale=fail_ls,
        loss_linear_columns=list(scaling_columns), hyperparameters=new_hyper, notes=notes,
    )


def _log_evidence(model, X: Tensor, z: Tensor) -> float:
    """The log marginal likelihood of ``z`` (plus the hyperparameters' log prior) under ``model``."""
    from gpytorch.mlls import ExactMarginalLogLikelihood

    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(mll(model(X), z)) * z.numel()
    except (NotPSDError, RuntimeError, ValueError):
        value = -math.inf
    model.eval()
    return value if math.isfinite(value) else -math.inf


def _fit_one(X, z, hyper, *, refit, linear_columns, max_fit_points, maxiter, generator, sort_by, seed=None):
    """One GP on ``(X, z)``. ``seed`` fixes the subset and the optimiser's seed (the same for
    every warp a refit compares); None draws them from ``generator``."""
    note = None
    loaded = False
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    if refit:
        idx = _fit_subset(
            X.shape[0], sort_by if sort_by is not None else torch.zeros(X.shape[0]),
            max_points=max_fit_points, generator=generator,
        )
        sub = _gp(X[idx], z[idx], linear_columns=linear_columns)
        _load_hyperparameters(sub, hyper)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        note = _optimize(sub, maxiter=maxiter, seed=seed)
        hyper = _hyperparameters(sub)
        if idx.numel() == X.shape[0]:
            sub.eval()
            return sub, note
    model = _gp(X, z, linear_columns=linear_columns)
    loaded = _load_hyperparameters(model, hyper)
    if not loaded and not refit:
        # Nothing usable to reuse (e.g. a new param shape): fit after all.
        note = _optimize(model, maxiter=maxiter, seed=0)
    model.eval()
    return model, note
