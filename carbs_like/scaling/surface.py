"""The joint response surface behind the scaling law (today's estimator).

All successful runs are fitted at once:

    log L = log(E + sum_k A_k / s_k^alpha_k) + gamma(choices, s) + log(1 + q),
    q = d' H d,    d_j = (t_j - t*_j(s)) exp(+-sigma_j / 2),    t*(s) = a + B log s,

where ``t`` are the transformed values of the numeric params, ``t*(s)`` their optimum at scale s
(the relations), ``H`` a positive-definite curvature (how fast the loss rises away from the
optimum, with the interactions between params), ``sigma_j`` the log ratio of the curvatures above
and below the optimum in param j (real loss valleys are lopsided: doubling lr costs more than
halving it, so a symmetric bowl centres on the flat side), and ``gamma`` a loss factor per choice
that may drift with scale. This is a second-order (response-surface) model of the loss around a
moving optimum: every run informs it, and the near-optimal runs most (a second pass weights runs by
``1 / sqrt(1 + q / focus)``, since a quadratic bowl is a local description). It is fitted by
robust least squares (soft-L1 on the log loss), with weak priors that keep the optimum near the
runs; uncertainties come from refits on bootstrap resamples of the runs.

Everything here works on numpy arrays in the units of the laws (:class:`Runs`); no param names.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .power_laws import LossLaw, fit_loss_law, loss_law_value

__all__ = ["Runs", "Surface", "SurfaceFit", "drop_runaway_refits", "fit_surface", "information_rows", "n_coefficients",
           "prior_information"]


@dataclass(frozen=True)
class Runs:
    """The successful observations, in the units of the laws.

    Attributes:
        x: `n x k` natural-log scales.
        T: `n x p` transformed values of the relation params.
        choice: `n x c` index of each ChoiceParam's value.
        loss: `n` raw losses.
        log_cost: `n` natural-log costs.
    """

    x: np.ndarray
    T: np.ndarray
    choice: np.ndarray
    loss: np.ndarray
    log_cost: np.ndarray




def n_coefficients(k: int, p: int, n_choices: Sequence[int]) -> int:
    return (2 * k + 1) + p * (k + 2) + p * (p + 1) // 2 + sum(c - 1 for c in n_choices) * (k + 1)



@dataclass(frozen=True)
class Surface:
    """The response surface behind the relations, in standardised units.

    ``log L = log(E + sum_k A_k exp(-alpha_k x_k)) + gamma(choices, x) + log(1 + q)``, with
    ``q = d' H d`` the excess loss of params ``t`` away from their optimum ``a + B x``, where
    ``d = (t - a - B x) * exp(sign(t - a - B x) * sigma / 2)`` (``H = R R'`` positive definite,
    ``sigma`` the log ratio of each param's curvatures above and below its optimum), ``gamma`` a
    linear-in-x offset per non-reference choice. The coefficients are, in order, the loss law,
    ``a``, ``B``, ``R``'s lower triangle (log diagonal), ``gamma``'s and ``sigma``. ``x`` and
    ``t`` are centred and scaled by the observed spread here; the loss law is in raw log scales.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    t_mean: np.ndarray
    t_std: np.ndarray
    k: int
    p: int
    n_choices: tuple[int, ...]
    flat: tuple[bool, ...] = ()  # axes the runs do not vary: no exponent is learnt along them
    sided: bool = True  # False: a symmetric bowl (sigma = 0, no coefficients for it)

    @property
    def sizes(self) -> list[int]:
        k, p = self.k, self.p
        return [1 + 2 * k, p, p * k, p * (p + 1) // 2, sum(c - 1 for c in self.n_choices) * (k + 1), p if self.sided else 0]

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        return np.split(theta, np.cumsum(self.sizes)[:-1])

    def H(self, r: np.ndarray) -> np.ndarray:
        R = np.zeros((self.p, self.p))
        R[np.tril_indices(self.p)] = r
        d = np.diag_indices(self.p)
        R[d] = np.exp(R[d])
        return R @ R.T

    def gamma(self, g: np.ndarray, xs: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """`n` choice offsets for `n x k` standardised scales and `n x c` choice indices."""
        out = np.zeros(xs.shape[0])
        G = g.reshape(-1, self.k + 1)
        row = 0
        for j, c in enumerate(self.n_choices):
            for level in range(1, c):
                m = choice[:, j] == level
                out[m] += G[row, 0] + xs[m] @ G[row, 1:]
                row += 1
        return out

    def distances(self, theta: np.ndarray, x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`n x p` distances ``d`` from the optimum (standardised, each side scaled by its
        curvature; see the class) and `n x p` the side factors ``exp(+-sigma / 2)``."""
        _, a, B, _, _, sigma = self.split(theta)
        xs = (x - self.x_mean) / self.x_std
        D = (T - self.t_mean) / self.t_std - (a[None, :] + xs @ B.reshape(self.p, self.k).T)
        if not self.sided:
            return D, np.ones_like(D)
        e = np.exp(np.where(D > 0, 0.5, -0.5) * sigma[None, :])
        return D * e, e

    def log_loss(self, theta: np.ndarray, x: np.ndarray, T: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted log loss and excess ``q`` for `n x k` log scales, `n x p` T, `n x c` choices."""
        law, _, _, r, g, _ = self.split(theta)
        xs = (x - self.x_mean) / self.x_std
        base = np.log(np.maximum(loss_law_value(law, x), 1e-300))
        if self.p:
            D, _ = self.distances(theta, x, T)
            q = np.einsum("ni,ij,nj->n", D, self.H(r), D)
        else:
            q = np.zeros(x.shape[0])
        return base + self.gamma(g, xs, choice) + np.log1p(q), q

    def jacobian(self, theta: np.ndarray, x: np.ndarray, T: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """`n x len(theta)` derivatives of :meth:`log_loss` (its first output) by ``theta``."""
        law, _, _, r, _, _ = self.split(theta)
        k, p, n = self.k, self.p, x.shape[0]
        xs = (x - self.x_mean) / self.x_std
        terms = np.exp(law[1:1 + k][None, :] - law[1 + k:][None, :] * x)  # n x k
        base = np.maximum(law[0] + terms.sum(axis=1), 1e-300)
        parts = [1.0 / base[:, None], terms / base[:, None], -x * terms / base[:, None]]
        if p:
            D, e = self.distances(theta, x, T)
            R = np.zeros((p, p))
            R[np.tril_indices(p)] = r
            diag = np.diag_indices(p)
            R[diag] = np.exp(R[diag])
            v = D @ R  # n x p: v_j = sum_i D_i R_ij
            q = (v**2).sum(axis=1)
            HD = v @ R.T  # n x p
            scale = 1.0 / (1.0 + q)
            d_a = -2.0 * HD * e * scale[:, None]
            d_B = (d_a[:, :, None] * xs[:, None, :]).reshape(n, p * k)
            rows, cols = np.tril_indices(p)
            d_r = 2.0 * D[:, rows] * v[:, cols] * scale[:, None]
            d_r[:, rows == cols] *= R[rows[rows == cols], cols[rows == cols]]
            d_sigma = HD * np.abs(D) * scale[:, None]  # d d_j / d sigma_j = |d_j| / 2 * sign
            parts += [d_a, d_B, d_r]
        d_g = np.zeros((n, self.sizes[4]))
        col = 0
        for j, c in enumerate(self.n_choices):
            for level in range(1, c):
                m = choice[:, j] == level
                d_g[m, col] = 1.0
                d_g[m, col + 1:col + 1 + k] = xs[m]
                col += k + 1
        parts.append(d_g)
        if p and self.sided:
            parts.append(d_sigma)
        return np.hstack(parts)

    def relation(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw relation coefficients: `p` intercepts and `p x k` slopes (t* = c + S log s)."""
        _, a, B, _, _, _ = self.split(theta)
        slopes = self.t_std[:, None] * B.reshape(self.p, self.k) / self.x_std[None, :]
        return self.t_mean + self.t_std * a - slopes @ self.x_mean, slopes

    def start(self, runs: Runs, law: np.ndarray, *, curvature: float = 0.3, trend: bool = True) -> np.ndarray:
        """Initial coefficients: the loss law given, the optima through the best fifth of the runs
        (relative to that law; a linear trend in x if ``trend``), a bowl of the given curvature."""
        resid = np.log(runs.loss) - np.log(loss_law_value(law, runs.x))
        best = np.argsort(resid)[: max(2 * (self.k + 1), len(resid) // 5)]
        Ts = ((runs.T - self.t_mean) / self.t_std)[best]
        a, B = Ts.mean(axis=0), np.zeros((self.p, self.k))
        if trend and self.p:
            Z = np.hstack([np.ones((best.size, 1)), (runs.x[best] - self.x_mean) / self.x_std])
            coef, *_ = np.linalg.lstsq(Z, Ts, rcond=None)
            a, B = coef[0], np.clip(coef[1:].T, -3.0, 3.0)
            B[:, [i for i, f in enumerate(self.flat) if f]] = 0.0
        r = np.zeros(self.p * (self.p + 1) // 2)
        rows, cols = np.tril_indices(self.p)
        r[rows == cols] = math.log(curvature)
        return np.concatenate([law, a, B.ravel(), r, np.zeros(self.sizes[4]), np.zeros(self.sizes[5])])


def _bowl_bounds(bowl: Surface, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = bowl.k
    lo = np.full(sum(bowl.sizes), -np.inf)
    hi = np.full(sum(bowl.sizes), np.inf)
    lo[0], hi[0] = 0.0, float(loss.min()) * (1 - 1e-9)
    lo[1:1 + k], hi[1:1 + k] = -50.0, 80.0
    lo[1 + k:1 + 2 * k], hi[1 + k:1 + 2 * k] = 0.02, 2.0
    # The bowl's Cholesky diagonal is stored as a log: keep it within e^-8 .. e^8.
    r0 = sum(bowl.sizes[:3])
    rows, cols = np.tril_indices(bowl.p)
    diag = r0 + np.flatnonzero(rows == cols)
    lo[diag], hi[diag] = -8.0, 8.0
    for i, flat in enumerate(bowl.flat):
        if flat:  # the loss law barely moves along an axis the runs never varied
            hi[1 + k + i] = 0.02 + 1e-6
    if bowl.sizes[5]:  # the sides' curvatures within e^+-4 of each other
        lo[-bowl.sizes[5]:], hi[-bowl.sizes[5]:] = -4.0, 4.0
    return lo, hi


# The fit's robust scale (log loss), its second pass's focus on near-optimal runs (excess q) and
# the widths of its priors on the optimum, its slope (standardised units) and the log ratio of
# the curvatures on the two sides of the optimum; see _fit_bowl.
F_SCALE, FOCUS, CENTER_PRIOR, SLOPE_PRIOR, SIDE_PRIOR = 0.01, 0.005, 3.0, 10.0, 1.0


def _prior_index(bowl: Surface, n_theta: int) -> np.ndarray:
    """The coefficients the priors hold: the optimum ``a``, its slopes ``B`` and ``sigma``."""
    a_start = bowl.sizes[0]
    n_sides = bowl.sizes[5]
    return np.concatenate([a_start + np.arange(bowl.sizes[1] + bowl.sizes[2]), n_theta - n_sides + np.arange(n_sides)])


def _prior_scale(bowl: Surface, f_scale: float, center_prior: float, slope_prior: float,
                 side_prior: float = SIDE_PRIOR) -> np.ndarray:
    return np.concatenate([np.full(bowl.sizes[1], f_scale / center_prior),
                           np.full(bowl.sizes[2], f_scale / slope_prior),
                           np.full(bowl.sizes[5], f_scale / side_prior)])


def prior_information(bowl: Surface, n_theta: int) -> np.ndarray:
    """``P'P`` of the fit's prior residuals (on the optimum, its slopes and sides), `n_theta` square."""
    scale = _prior_scale(bowl, F_SCALE, CENTER_PRIOR, SLOPE_PRIOR)
    out = np.zeros((n_theta, n_theta))
    idx = _prior_index(bowl, n_theta)
    out[idx, idx] = scale**2
    return out


def information_rows(bowl: Surface, theta: np.ndarray, x: np.ndarray, T: np.ndarray,
                     choice: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Jacobian of the log loss by ``theta`` at `n` runs (unweighted), the weights the fit's
    second pass gives them (``1 / sqrt(1 + q / FOCUS)``) and their predicted log losses."""
    pred, q = bowl.log_loss(theta, x, T, choice)
    return bowl.jacobian(theta, x, T, choice), 1.0 / np.sqrt(1.0 + q / FOCUS), pred


def _fit_bowl(bowl: Surface, runs: Runs, theta0: np.ndarray, *, rows: np.ndarray | None = None,
              focus: float = FOCUS, f_scale: float = F_SCALE, center_prior: float = CENTER_PRIOR,
              slope_prior: float = SLOPE_PRIOR) -> np.ndarray:
    """Robust least squares of the log loss; a second pass weights runs near their optimum
    (excess ``q`` below ``focus``) most, as the quadratic bowl is a local description.

    Weak Gaussian priors, in the standardised units of the runs, keep the optimum where the runs
    can say something about it: its value at the runs' mean scale within ~``center_prior``
    standard deviations of the runs' values, and its slope within ~``slope_prior`` standard
    deviations of the values per standard deviation of the scales. A prior deviation of one std
    weighs as much as one run misfit by ``f_scale`` in log loss in the first pass (in the second,
    runs far from their optimum weigh less, the priors as much as before), so where the runs pin the bowl
    down (a curved loss, runs on both sides of the optimum) the data outweigh it many times; where
    the loss is nearly flat in a param, or one bootstrap resample leaves one side empty, it stops
    the optimum from running off to wherever a sharp, distant bowl fits the few runs best. The log
    ratio of the two sides' curvatures has a prior of width ``SIDE_PRIOR`` (a ratio of ~e either
    way weighs like one such misfit run), so a side with no run on it does not fit as a wall.
    """
    from scipy.optimize import least_squares

    rows = np.arange(runs.x.shape[0]) if rows is None else rows
    x, T, C, ly = runs.x[rows], runs.T[rows], runs.choice[rows], np.log(runs.loss[rows])
    lo, hi = _bowl_bounds(bowl, runs.loss)
    theta = np.clip(theta0, lo + 1e-9, hi - 1e-9)
    # Prior residuals f_scale * a / center_prior, f_scale * B / slope_prior (a, B standardised)
    # and f_scale * sigma / SIDE_PRIOR.
    idx = _prior_index(bowl, theta.size)
    prior_scale = _prior_scale(bowl, f_scale, center_prior, slope_prior)
    prior_jac = np.zeros((idx.size, theta.size))
    prior_jac[np.arange(idx.size), idx] = prior_scale
    w = np.ones(len(rows))
    for _ in range(2):
        def resid(th: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            prior = th[idx] * prior_scale
            return np.concatenate([(bowl.log_loss(th, x, T, C)[0] - ly) * w, prior])

        def jac(th: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            return np.vstack([bowl.jacobian(th, x, T, C) * w[:, None], prior_jac])

        theta = least_squares(resid, theta, jac=jac, bounds=(lo, hi), loss="soft_l1", f_scale=f_scale,
                              method="trf", max_nfev=200 * len(theta)).x
        q = bowl.log_loss(theta, x, T, C)[1]
        w = 1.0 / np.sqrt(1.0 + q / focus)
    return theta



def drop_runaway_refits(bowl: Surface, runs: Runs, samples: np.ndarray, *, z: float = 6.0) -> np.ndarray:
    """The bootstrap refits without the runaways, for the uncertainty bands.

    A resample that happens to leave out the runs on one side of an optimum can fit a sharp bowl
    centred far away; one such refit in 32 would dominate a covariance (an lr interval of ten
    decades). A refit is dropped when its relations or loss law at the runs' smallest, mean or
    largest scale lie more than ``z`` robust standard deviations (1.4826 x MAD) from the median
    refit's; at most a quarter of the refits are dropped.
    """
    if len(samples) < 4:
        return samples
    k = bowl.k
    corners = np.stack([runs.x.min(axis=0), runs.x.mean(axis=0), runs.x.max(axis=0)])
    feats = []
    for th in samples:
        intercept, slopes = bowl.relation(th)
        rel = (intercept[None, :] + corners @ slopes.T).ravel()
        law = np.log(np.maximum(loss_law_value(th[:1 + 2 * k], corners), 1e-300))
        feats.append(np.concatenate([rel, law]))
    F = np.asarray(feats)
    med = np.median(F, axis=0)
    mad = 1.4826 * np.median(np.abs(F - med), axis=0)
    score = (np.abs(F - med) / np.maximum(mad, 1e-6 * (1.0 + np.abs(med)))).max(axis=1)
    keep = score <= z
    if keep.sum() < len(samples) - len(samples) // 4:
        keep = score <= np.sort(score)[len(samples) - len(samples) // 4 - 1]
    return samples[keep]


def _misfit(bowl: Surface, runs: Runs, theta: np.ndarray, *, f_scale: float = 0.01) -> float:
    """Soft-L1 misfit of the log loss over all runs (to compare fits from different starts)."""
    r = bowl.log_loss(theta, runs.x, runs.T, runs.choice)[0] - np.log(runs.loss)
    return float(np.sum(2.0 * (np.sqrt(1.0 + (r / f_scale) ** 2) - 1.0)))


def _flatten_narrow_axes(axes: Sequence[str], runs: Runs, *, min_factor: float = 1.5) -> tuple[Runs, np.ndarray]:
    """Hold constant (with a warning) the scaling axes the runs vary by less than ``min_factor``:
    nothing can be learnt along them, and a slope fitted to their jitter would extrapolate wildly."""
    span = runs.x.max(axis=0) - runs.x.min(axis=0)
    flat = span < math.log(min_factor)
    for name, f, sp in zip(axes, flat, span):
        if f:
            warnings.warn(
                f"scaling axis {name!r} varies only by a factor {math.exp(sp):.3g} across the successful runs; "
                f"the scaling law holds the best params and the loss constant along it. Run (or add()) trials "
                f"that vary {name} by 2x or more to learn how they move with it.",
                RuntimeWarning, stacklevel=4,
            )
    if not flat.any():
        return runs, flat
    x = runs.x.copy()
    x[:, flat] = x[:, flat].mean(axis=0)
    return dataclasses.replace(runs, x=x), flat


def _law_vector(law: LossLaw) -> np.ndarray:
    return np.array([law.E, *np.log(law.A), *law.alpha])


def _lower_envelope(runs: Runs, *, bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The best run in each cell of a grid over the log scales (a rough front to start from)."""
    x = runs.x
    span = np.maximum(x.max(axis=0) - x.min(axis=0), 1e-9)
    cell = np.minimum(((x - x.min(axis=0)) / span * bins).astype(int), bins - 1)
    best: dict[tuple, int] = {}
    for i, key in enumerate(map(tuple, cell.tolist())):
        if key not in best or runs.loss[i] < runs.loss[best[key]]:
            best[key] = i
    idx = np.array(sorted(best.values()))
    if len(idx) < 2 * x.shape[1] + 2:
        idx = np.arange(x.shape[0])
    return x[idx], runs.loss[idx]



@dataclass(frozen=True)
class SurfaceFit:
    """A fitted response surface, in raw units (natural-log scales, transformed params).

    Attributes:
        intercepts: `p` relation intercepts ``c`` of ``t*(s) = c + S log s``.
        slopes: `p x k` relation slopes ``S``.
        coefficients: `b x p x (k+1)` bootstrap refits of ``(c, S)`` (b may be 0).
        curvature: `p` relative loss increase per squared transformed unit away from the optimum.
        loss_law: the loss law along the optimum, with its bootstrap refits.
        excess: `n` each run's fitted relative loss excess ``q`` over the best at its scale.
        flat: `k` axes the runs barely vary (held constant: no slope is learnt along them).
        curvature_matrix: `p x p` the bowl's ``H`` in transformed units.
        sides: `p` log ratios ``sigma`` of the curvatures above and below each optimum (0: symmetric).
        surface, theta, samples: the fitted surface and its coefficients (for diagnostics).
    """

    surface: Surface
    theta: np.ndarray
    samples: np.ndarray
    intercepts: np.ndarray
    slopes: np.ndarray
    coefficients: np.ndarray
    curvature: np.ndarray
    loss_law: LossLaw
    excess: np.ndarray
    flat: np.ndarray
    curvature_matrix: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    sides: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def choice_offset(self, row: int, log_scales: np.ndarray) -> float:
        """The mean log-loss offset of non-reference choice ``row`` (over all ChoiceParams, in
        order) at `m x k` log scales, relative to its param's first choice."""
        s = self.surface
        xs = (log_scales - s.x_mean) / s.x_std
        g = s.split(self.theta)[4].reshape(-1, s.k + 1)
        return float((g[row, 0] + xs @ g[row, 1:]).mean())


def fit_surface(runs: Runs, *, axes: Sequence[str], n_choices: Sequence[int], n_bootstrap: int,
                seed: int, sided: bool = True) -> SurfaceFit:
    """Fit the response surface to the runs, with ``n_bootstrap`` refits for the uncertainties.

    Axes the runs vary by less than a factor 1.5 are held constant (with a warning). ``sided=False``
    fits a symmetric bowl (the same curvature on both sides of each optimum).
    """
    k = len(axes)
    runs, flat = _flatten_narrow_axes(axes, runs)
    bowl = Surface(
        x_mean=runs.x.mean(axis=0), x_std=np.where(flat, 1.0, runs.x.std(axis=0)),
        t_mean=runs.T.mean(axis=0), t_std=np.maximum(runs.T.std(axis=0), 1e-9),
        k=k, p=runs.T.shape[1], n_choices=tuple(n_choices), flat=tuple(bool(f) for f in flat), sided=sided,
    )
    # Start the loss law from the lower envelope: the best run at each scale (quantile by scale bin).
    start_law = fit_loss_law(*_lower_envelope(runs), axes=axes, n_bootstrap=0, robust=False)
    law0 = _law_vector(start_law)
    for i in np.flatnonzero(flat):  # move the exponent to its floor, keeping the term's value
        law0[1 + i] += (0.02 - law0[1 + k + i]) * bowl.x_mean[i]
        law0[1 + k + i] = 0.02
    # A few starts of the symmetric bowl; keep the fit with the lowest robust misfit. The lopsided
    # valley starts from it (sides equal): started cold, its extra freedom can lead the fit to
    # another, far worse local optimum (on one landscape an lr exponent of -2.4 against -0.7).
    sym = dataclasses.replace(bowl, sided=False)
    best_cost, theta = math.inf, None
    for curvature, trend in ((0.3, True), (0.3, False), (1.0, True)):
        th = _fit_bowl(sym, runs, sym.start(runs, law0, curvature=curvature, trend=trend))
        cost = _misfit(sym, runs, th)
        if cost < best_cost:
            best_cost, theta = cost, th
    assert theta is not None
    if sided:
        theta = _fit_bowl(bowl, runs, np.concatenate([theta, np.zeros(bowl.sizes[5])]))

    rng = np.random.default_rng(seed)
    n = runs.x.shape[0]
    samples = np.stack([_fit_bowl(bowl, runs, theta, rows=rng.integers(0, n, n)) for _ in range(n_bootstrap)]) \
        if n_bootstrap else np.zeros((0, theta.size))
    samples = drop_runaway_refits(bowl, runs, samples)

    intercepts, slopes = bowl.relation(theta)
    if len(samples) >= 2:
        boot = [bowl.relation(s) for s in samples]
        coefficients = np.stack([np.concatenate([c[:, None], S], axis=1) for c, S in boot])  # b x p x (k+1)
    else:
        coefficients = np.zeros((0, bowl.p, k + 1))
    r = bowl.split(theta)[3]
    H = bowl.H(r) / np.outer(bowl.t_std, bowl.t_std) if bowl.p else np.zeros((0, 0))
    law = theta[:1 + 2 * k]
    loss_law = LossLaw(
        axes=tuple(axes), E=float(law[0]), A=tuple(float(v) for v in np.exp(law[1:1 + k])),
        alpha=tuple(float(v) for v in law[1 + k:]), samples=tuple(tuple(map(float, s[:1 + 2 * k])) for s in samples),
        n_points=n,
    )
    return SurfaceFit(
        surface=bowl, theta=theta, samples=samples, intercepts=intercepts, slopes=slopes,
        coefficients=coefficients, curvature=np.diag(H).copy(), loss_law=loss_law,
        excess=bowl.log_loss(theta, runs.x, runs.T, runs.choice)[1], flat=flat, curvature_matrix=H,
        sides=bowl.split(theta)[5] if bowl.sided else np.zeros(bowl.p),
    )
