"""ScalingLaw: recovering planted laws from imported runs, proposals, real public data, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from carbs_like import ChoiceParam, LinearParam, LogitParam, LogParam, SearchSpace
from carbs_like.testing import LLMLandscape
from carbs_like.scaling import Prediction, ScalingLaw, fit_cost_law, fit_loss_law
from carbs_like.tuner import Tuner

DATA = Path(__file__).resolve().parent / "data"  # copies of the shared public data (see its README)


def import_runs(landscape: LLMLandscape, n: int, *, seed: int, spread: float = 0.7) -> Tuner:
    """A tuner holding ``n`` runs of an old sweep around the landscape's optima, imported with add."""
    space = landscape.space()
    rng = np.random.default_rng(seed)
    tuner = Tuner(space, seed=seed)
    (n_lo, n_hi), (d_lo, d_hi) = landscape.n_params_range, landscape.tokens_range
    for _ in range(n):
        N = math.exp(rng.uniform(math.log(n_lo), math.log(n_hi)))
        D = math.exp(rng.uniform(math.log(d_lo), math.log(d_hi)))
        opt = landscape.optimal_config(N, D)
        config = {
            "n_params": N,
            "tokens": D,
            "lr": opt["lr"] * math.exp(spread * rng.standard_normal()),
            "batch_size": float(np.clip(opt["batch_size"] * math.exp(spread * rng.standard_normal()), 1e3, 1e7)),
            "weight_decay": float(np.clip(opt["weight_decay"] * math.exp(spread * rng.standard_normal()), 1e-4, 10)),
            "schedule": str(rng.choice(list(landscape.schedule_factor))),
        }
        loss, cost, failed = landscape.evaluate(config, rng=rng)
        tuner.add(config, loss=loss, cost=cost, failed=failed)
    return tuner


def planted(landscape: LLMLandscape) -> dict[str, tuple[float, float]]:
    """The true exponents (n_params, tokens) of each relation of the landscape."""
    lr = (landscape.lr_n, landscape.lr_d)
    bs = (0.0, landscape.bs_d)
    wd = (bs[0] - lr[0], bs[1] - lr[1] - 1.0)  # wd* = B* / (lr* tau* D)
    return {"lr": lr, "batch_size": bs, "weight_decay": wd}


# Landscapes with exponents other than the published ones the default is built from.
OTHER = LLMLandscape(lr_n=-0.45, lr_d=0.18, bs_d=0.42, tau_opt=0.08, alpha=0.3, beta=0.33)


@pytest.fixture(scope="module")
def other_law() -> tuple[ScalingLaw, LLMLandscape]:
    return import_runs(OTHER, 160, seed=1).scaling_law(), OTHER


@pytest.mark.parametrize("landscape", [OTHER, LLMLandscape.random(3)], ids=["other", "random3"])
def test_recovers_planted_exponents(landscape: LLMLandscape) -> None:
    tuner = import_runs(landscape, 160, seed=1)
    law = ScalingLaw.fit(tuner, n_bootstrap=8)
    for name, truth in planted(landscape).items():
        rel = law.relations[name]
        for axis, b, sd, t in zip(rel.axes, rel.slopes, rel.slope_std, truth):
            assert abs(b - t) < 0.06, f"{name} exponent on {axis}: fitted {b:.3f}, planted {t:.3f}"
            assert sd > 0
    best = min(landscape.schedule_factor, key=landscape.schedule_factor.get)
    assert law.choices["schedule"] == best
    # The loss law's exponents come out near the planted Chinchilla exponents too.
    assert law.loss_law.alpha == pytest.approx((landscape.alpha, landscape.beta), abs=0.05)


def test_proposal_beyond_bounds_is_full_and_near_the_optimum(other_law) -> None:
    law, landscape = other_law
    size = {"n_params": 7e9, "tokens": 1.4e11}  # far beyond the searched n_params <= 3e7, tokens <= 3e9
    config = law.propose(**size)
    assert type(config) is dict and list(config) == law.space.names
    assert config["n_params"] == pytest.approx(7e9) and config["tokens"] == pytest.approx(1.4e11)
    assert isinstance(config["batch_size"], int)
    assert isinstance(config["lr"], float) and config["lr"] > 0
    assert config["schedule"] in landscape.schedule_factor
    assert 1e-4 <= config["weight_decay"] <= 10.0
    regret = landscape.loss(config) / float(landscape.optimal_loss(**size)) - 1
    assert regret < 0.005
    assert law.propose(size) == config  # the scaling values may come as a dict


def test_predict_gives_intervals_that_cover_the_truth(other_law) -> None:
    law, landscape = other_law
    size = {"n_params": 1e9, "tokens": 2e10}
    pred = law.predict(**size)
    assert isinstance(pred, Prediction) and pred.config == law.propose(**size)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.loss = 0.0  # type: ignore[misc]
    truth = landscape.optimal_config(**size)
    for name in ("lr", "batch_size", "weight_decay"):
        lo, hi = pred.intervals[name]
        assert lo <= pred.config[name] <= hi
        assert lo <= truth[name] <= hi, f"{name}: true optimum {truth[name]:.3g} outside [{lo:.3g}, {hi:.3g}]"
    lo, hi = pred.loss_interval
    assert lo <= pred.loss <= hi
    assert pred.loss == pytest.approx(float(landscape.optimal_loss(**size)), rel=0.02)
    wide = law.predict(**size, level=0.99).intervals["lr"]
    assert wide[0] <= pred.intervals["lr"][0] and wide[1] >= pred.intervals["lr"][1]


def test_the_loss_band_carries_the_error_measured_at_held_out_scales(other_law) -> None:
    # Scattered runs (no sweep per scale): the model error comes from refitting without the
    # largest runs, and grows in proportion to the distance beyond them.
    law, _ = other_law
    ll = law.loss_law
    assert ll.model_std > 0 and ll.held_std > 0 and ll.held_distance > 0
    center = np.asarray(ll.center)
    step = np.ones_like(center) / np.sqrt(center.size)
    near, far = center[None, :], (center + 4 * ll.held_distance * step)[None, :]
    assert ll.model_error(near)[0] == pytest.approx(ll.model_std)
    assert ll.model_error(far)[0] == pytest.approx(max(ll.model_std, 4 * ll.held_std))
    (lo_n,), (hi_n,) = ll.band(near)
    (lo_f,), (hi_f,) = ll.band(far)
    assert (hi_f - lo_f) / ll(far)[0] > 3 * (hi_n - lo_n) / ll(near)[0]


def test_propose_for_a_budget_spends_it(other_law) -> None:
    law, landscape = other_law
    budget = 1e21
    pred = law.predict(cost=budget)
    assert pred.cost == pytest.approx(budget, rel=1e-6)
    assert landscape.cost(pred.config) == pytest.approx(budget, rel=1e-6)
    # The split between n_params and tokens is near the best one for that budget.
    N = np.geomspace(1e6, 1e14, 4001)
    best = float(np.min(landscape.optimal_loss(N, budget / (6 * N))))
    assert float(landscape.optimal_loss(pred.config["n_params"], pred.config["tokens"])) < best * 1.01
    assert list(law.propose(cost=budget)) == law.space.names


def test_table_lists_every_relation_with_uncertainty(other_law) -> None:
    law, _ = other_law
    table = law.table()
    assert list(table["param"]) == ["lr", "batch_size", "weight_decay", "schedule"]
    for axis in law.space.scaling:
        assert (table.loc[table["kind"] == "power law", f"exponent[{axis}]_std"] > 0).all()
    assert table.loc[table["param"] == "schedule", "choice"].item() == law.choices["schedule"]


def test_one_axis_with_linear_and_logit_params() -> None:
    """Relations in transformed units: identity for LinearParam, logit for LogitParam."""
    space = SearchSpace(
        [
            LogParam("steps", min=1e3, max=1e5, integer=True),
            LinearParam("warmup", min=-1.0, max=2.0),
            LogitParam("dropout", min=0.01, max=0.9),
            ChoiceParam("norm", ["pre", "post", "none"]),
        ],
        scaling=["steps"],
    )
    rng = np.random.default_rng(0)
    tuner = Tuner(space, seed=0)
    for _ in range(80):
        s = math.exp(rng.uniform(math.log(1e3), math.log(1e5)))
        w_opt, d_opt = 0.1 + 0.05 * math.log(s), -1.0 - 0.15 * math.log(s)  # dropout in logit units
        w = float(np.clip(w_opt + 0.4 * rng.standard_normal(), -1, 2))
        d = 1 / (1 + math.exp(-(d_opt + 0.6 * rng.standard_normal())))
        d = float(np.clip(d, 0.01, 0.9))
        norm = str(rng.choice(["pre", "post", "none"]))
        q = 0.3 * (w - w_opt) ** 2 + 0.1 * (math.log(d / (1 - d)) - d_opt) ** 2
        loss = (2.0 + 30 * s**-0.4) * (1 + q) * {"pre": 0.98, "post": 1.0, "none": 1.03}[norm]
        tuner.add({"steps": s, "warmup": w, "dropout": d, "norm": norm}, loss=loss * math.exp(0.002 * rng.standard_normal()), cost=s)
    law = ScalingLaw.fit(tuner, n_bootstrap=4)
    assert law.relations["warmup"].transform == "linear"
    assert law.relations["warmup"].slopes[0] == pytest.approx(0.05, abs=0.015)
    assert law.relations["dropout"].transform == "logit"
    assert law.relations["dropout"].slopes[0] == pytest.approx(-0.15, abs=0.03)
    assert law.choices["norm"] == "pre"
    config = law.propose(steps=1e7)
    assert isinstance(config["steps"], int) and config["steps"] == 10_000_000
    assert 0.0 < config["dropout"] < 1.0 and -1.0 <= config["warmup"] <= 2.0
    assert law.propose(cost=1e7)["steps"] == pytest.approx(1e7, rel=1e-3)  # cost = steps here


def test_loss_law_recovers_planted_constants() -> None:
    N, D = np.meshgrid(np.geomspace(1e6, 1e9, 7), np.geomspace(1e8, 1e11, 7))
    x = np.log(np.stack([N.ravel(), D.ravel()], axis=1))
    loss = 1.9 + 600 * N.ravel() ** -0.31 + 900 * D.ravel() ** -0.36
    law = fit_loss_law(x, loss, axes=["n_params", "tokens"], n_bootstrap=0)
    assert law.E == pytest.approx(1.9, rel=0.01)
    assert law.alpha == pytest.approx((0.31, 0.36), abs=0.005)
    assert law.A == pytest.approx((600, 900), rel=0.1)


def test_cost_law_recovers_flops() -> None:
    rng = np.random.default_rng(0)
    x = np.log(rng.uniform(1e6, 1e9, (20, 2)))
    law = fit_cost_law(x, math.log(6) + x.sum(axis=1), axes=["n_params", "tokens"])
    assert law.slopes == pytest.approx((1.0, 1.0)) and law.intercept == pytest.approx(math.log(6))


def test_chinchilla_loss_law_lands_near_the_published_fit() -> None:
    import pandas as pd

    df = pd.read_csv(DATA / "epoch_chinchilla_losses.csv")
    N, D = df["n_params"].to_numpy(), df["tokens"].to_numpy()
    published = 1.8172 + 482.01 / N**0.3478 + 2085.43 / D**0.3658  # Besiroglu et al. 2024
    law = fit_loss_law(np.log(np.stack([N, D], axis=1)), df["final_loss"].to_numpy(), axes=["n_params", "tokens"],
                       n_bootstrap=0)
    assert 1.6 < law.E < 2.1
    assert law.alpha[0] == pytest.approx(0.3478, abs=0.04)
    ours = law(np.log(np.stack([N, D], axis=1)))
    assert np.median(np.abs(ours / published - 1)) < 0.01

    # The same data imported into a tuner (a space of scaling axes only) gives the same law.
    space = SearchSpace([LogParam("n_params", min=1e7, max=3e10), LogParam("tokens", min=1e8, max=1e12)],
                        scaling=["n_params", "tokens"])
    tuner = Tuner(space)
    for row in df.itertuples():
        tuner.add({"n_params": row.n_params, "tokens": row.tokens}, loss=row.final_loss, cost=row.flops)
    via_tuner = ScalingLaw.fit(tuner, n_bootstrap=0).loss_law(np.log(np.stack([N, D], axis=1)))
    assert np.median(np.abs(via_tuner / published - 1)) < 0.01


def test_step_law_sweep_proposals_for_a_larger_run() -> None:
    """Real MoE sweeps: import the runs with up to 8e9 tokens, propose lr and batch for 2e10 tokens
    (2.5x larger), and score against the measured grid there."""
    import pandas as pd

    df = pd.read_csv(DATA / "steplaw_moe_sweep.csv")
    space = SearchSpace(
        [LogParam("n_params", min=1e8, max=2e9), LogParam("tokens", min=1e9, max=3e10),
         LogParam("lr", min=1e-4, max=1e-2), LogParam("batch_tokens", min=3e4, max=3e6, integer=True)],
        scaling=["n_params", "tokens"],
    )
    tuner = Tuner(space)
    train = df[df["tokens"] < 2e10]
    for r in train.itertuples():
        tuner.add({"n_params": r.n_active_params, "tokens": r.tokens, "lr": r.lr, "batch_tokens": r.batch_tokens},
                  loss=None if r.diverged else r.final_loss, cost=6.0 * r.n_active_params * r.tokens,
                  failed=bool(r.diverged))
    law = ScalingLaw.fit(tuner, n_bootstrap=0)
    lr_factor, carry_factor = [], []
    for _, grid in df[df["tokens"] == 2e10].groupby("n_active_params"):
        best = grid.loc[grid["final_loss"].idxmin()]
        config = law.propose(n_params=best.n_active_params, tokens=2e10)
        lr_factor.append(abs(math.log(config["lr"] / best.lr)))
        smallest = train[(train["n_active_params"] == best.n_active_params) & (train["tokens"] == train["tokens"].min())]
        carry_factor.append(abs(math.log(smallest.loc[smallest["final_loss"].idxmin()].lr / best.lr)))
        # The measured loss of the grid point nearest the proposal is within 0.2% of the grid's best.
        dist = (np.log(grid["lr"] / config["lr"]) ** 2 + np.log(grid["batch_tokens"] / config["batch_tokens"]) ** 2)
        assert grid.loc[dist.idxmin(), "final_loss"] / best.final_loss - 1 < 0.002
    # Within a factor 2.25 of the measured best lr (the grid steps by sqrt 2), everywhere;
    # carrying the best lr of the smallest runs over is not.
    assert max(lr_factor) < math.log(2.25)
    assert max(carry_factor) > math.log(2.25)


def test_too_few_observations_is_a_clear_error() -> None:
    tuner = import_runs(OTHER, 6, seed=0)
    with pytest.raises(ValueError, match="too few observations"):
        tuner.scaling_law()


def test_no_scaling_axes_is_a_clear_error() -> None:
    tuner = Tuner(SearchSpace([LogParam("lr", center=1e-3)]))
    with pytest.raises(ValueError, match="no scaling axes"):
        tuner.scaling_law()


def test_bad_proposal_requests_are_clear_errors(other_law) -> None:
    law, _ = other_law
    with pytest.raises(ValueError, match="missing scaling value"):
        law.propose(n_params=1e9)
    with pytest.raises(ValueError, match="not scaling axes"):
        law.propose(n_params=1e9, tokens=1e10, lr=1e-3)
    with pytest.raises(ValueError, match="either cost= or"):
        law.propose(n_params=1e9, tokens=1e10, cost=1e20)
    with pytest.raises(ValueError, match="positive"):
        law.propose(n_params=-1.0, tokens=1e10)
    with pytest.raises(ValueError, match="positive"):
        law.propose(cost=0.0)


def test_plots_draw_every_relation_and_the_loss_law(other_law, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    law, _ = other_law
    target = {"n_params": 1e9, "tokens": 2e10}
    fig = law.plot_relations(target=target)
    panels = [ax for ax in fig.axes if ax.get_xlabel() in law.space.scaling]
    assert len(panels) == len(law.relations) * len(law.space.scaling)
    fig.savefig(tmp_path / "relations.png")
    fig = law.plot_loss(target=target)
    assert fig.axes[0].get_xlabel() == "cost"
    fig.savefig(tmp_path / "loss.png")
    assert (tmp_path / "relations.png").stat().st_size > 0 and (tmp_path / "loss.png").stat().st_size > 0


def test_an_axis_the_runs_do_not_vary_is_held_constant_with_a_warning() -> None:
    narrow = OTHER.with_(n_params_range=(1.0e7, 1.1e7))
    tuner = import_runs(narrow, 160, seed=2)
    with pytest.warns(RuntimeWarning, match="varies only by a factor"):
        law = ScalingLaw.fit(tuner, n_bootstrap=4)
    for rel in law.relations.values():
        assert rel.slopes[0] == pytest.approx(0.0, abs=1e-6)  # nothing learnt along n_params
    # Along tokens, which the runs do vary, the planted exponents are still found.
    assert law.relations["lr"].slopes[1] == pytest.approx(narrow.lr_d, abs=0.08)
    small, big = law.propose(n_params=1e7, tokens=1e9), law.propose(n_params=1e9, tokens=1e9)
    assert small["lr"] == pytest.approx(big["lr"], rel=1e-9) and small["batch_size"] == big["batch_size"]


def data_limited_runs(n: int = 60, *, seed: int = 0) -> Tuner:
    """Runs whose loss falls with tokens only (a data-limited regime), lr optimum fixed at 3e-3."""
    space = SearchSpace([LogParam("n_params", min=1e4, max=2e5), LogParam("tokens", min=1e5, max=1e6),
                         LogParam("lr", center=3e-3)], scaling=["n_params", "tokens"])
    rng = np.random.default_rng(seed)
    tuner = Tuner(space, seed=seed)
    for _ in range(n):
        N, D = (math.exp(rng.uniform(math.log(a), math.log(b))) for a, b in ((1e4, 2e5), (1e5, 1e6)))
        lr = 3e-3 * math.exp(0.6 * rng.standard_normal())
        loss = 20 * D**-0.18 * (1 + 0.05 * math.log(lr / 3e-3) ** 2) * math.exp(0.003 * rng.standard_normal())
        tuner.add({"n_params": N, "tokens": D, "lr": lr}, loss=loss, cost=N * D / 1e10)
    return tuner


def test_budget_split_stays_within_the_ratios_the_runs_tried() -> None:
    # The loss law finds no n_params term, so the unconstrained compute-optimal split would train a
    # vanishing model on endless tokens; the split may leave the runs' largest tokens/n_params only
    # by sqrt(budget / largest cost): not at all within the runs' costs, 10x for 100x their cost.
    law = ScalingLaw.fit(data_limited_runs(), n_bootstrap=4)
    obs = law.evidence.log_scales
    ratio = obs[:, 1] - obs[:, 0]
    largest = float(np.exp(law.cost_law(obs).max()))
    for factor, beyond in ((0.5, 0.0), (100.0, math.log(10.0))):
        pred = law.predict(cost=factor * largest)
        got = math.log(pred.config["tokens"] / pred.config["n_params"])
        assert got == pytest.approx(ratio.max() + beyond, abs=1e-3)  # more tokens is all this law wants
        assert pred.cost == pytest.approx(factor * largest, rel=1e-4)
        assert any("ratios between the scaling axes" in note for note in pred.notes)
        assert pred.config["n_params"] > 1e3  # not the vanishing model


def test_a_runaway_bootstrap_refit_does_not_blow_up_the_bands() -> None:
    from carbs_like.scaling import law as law_module
    from carbs_like.scaling.surface import Surface, drop_runaway_refits

    tuner = data_limited_runs(seed=1)
    law = ScalingLaw.fit(tuner, n_bootstrap=12)
    lo, hi = law.predict(n_params=2e6, tokens=1e7).intervals["lr"]  # 10x beyond both axes
    assert 3e-3 / 3 < lo < hi < 3e-3 * 3, (lo, hi)  # near the true 3e-3, not ten decades wide
    # A refit far from the rest (an optimum 20 decades away) is dropped; the others are kept.
    runs, _, _ = law_module._runs(tuner.space, tuner.observed_data())
    bowl = Surface(x_mean=runs.x.mean(0), x_std=runs.x.std(0), t_mean=runs.T.mean(0), t_std=runs.T.std(0),
                         k=2, p=1, n_choices=())
    rng = np.random.default_rng(0)
    theta = np.array([0.0, -40.0, 3.0, 1.0, 0.18, 0.0, 0.0, 0.0, 0.0])
    samples = theta + 0.01 * rng.standard_normal((12, theta.size))
    samples[3, 5] = 40.0  # the optimum's intercept, in standard deviations of the runs' lr
    kept = drop_runaway_refits(bowl, runs, samples)
    assert len(kept) == 11 and not np.any(kept[:, 5] > 1.0)


def test_the_cli_table_shows_the_predictions_notes() -> None:
    from carbs_like.cli.verify import format_prediction

    tuner = data_limited_runs()
    law = ScalingLaw.fit(tuner, n_bootstrap=0)
    pred = law.predict(cost=1e3 * float(tuner.observations()["cost"].max()))
    assert pred.notes
    text = format_prediction(pred, tuner)
    assert "note: the loss law would split this budget" in text
    assert "lr" in text and "predicted loss" in text


def test_fits_run_single_threaded_by_default_and_restore_the_setting(monkeypatch) -> None:
    import torch

    from carbs_like.scaling import law as law_module

    seen = []
    real = law_module.fit_surface

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(law_module, "fit_surface", spy)
    tuner = data_limited_runs()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ScalingLaw.fit(tuner, n_bootstrap=0)
        assert seen[-1] == 1 and torch.get_num_threads() == 2
        ScalingLaw.fit(tuner, n_bootstrap=0, threads=None)
        assert seen[-1] == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        ScalingLaw.fit(tuner, threads=0)


def test_a_clamped_proposal_warns_naming_the_param_and_bound(other_law) -> None:
    law, _ = other_law
    with pytest.warns(UserWarning, match=r"batch_size.*max=10000000"):
        pred = law.predict(n_params=1e9, tokens=1e17)  # batch* ~ tokens^0.42 far beyond 1e7
    assert pred.config["batch_size"] == 10**7
    assert any("batch_size" in n and "clamped" in n for n in pred.notes)


def test_a_budget_is_spent_when_an_axis_is_held_constant() -> None:
    narrow = OTHER.with_(n_params_range=(1.0e7, 1.4e7))
    tuner = import_runs(narrow, 160, seed=2)
    with pytest.warns(RuntimeWarning, match="varies only by a factor"):
        law = ScalingLaw.fit(tuner, n_bootstrap=0)
    largest = float(tuner.observations()["cost"].max())
    for factor in (0.5, 10.0, 1e3):
        pred = law.predict(cost=factor * largest)
        assert 0.8 <= narrow.cost(pred.config) / (factor * largest) <= 1.0 + 1e-9


def test_predict_loss_is_lowest_at_the_proposal_and_tracks_the_landscape(other_law) -> None:
    law, landscape = other_law
    size = {"n_params": 1e9, "tokens": 2e10}
    pred = law.predict(**size)
    configs = [pred.config] + [{**pred.config, "lr": pred.config["lr"] * f} for f in (0.25, 4.0)]
    table = law.predict_loss(configs)
    assert list(table.columns) == ["loss", "loss_lo", "loss_hi"] and len(table) == 3
    assert (table["loss_lo"] <= table["loss"]).all() and (table["loss"] <= table["loss_hi"]).all()
    assert table["loss"][0] == pytest.approx(pred.loss * law.choice_scores["schedule"][pred.config["schedule"]], rel=1e-6)
    assert table["loss"][0] < table["loss"][1] and table["loss"][0] < table["loss"][2]
    truth = np.array([landscape.loss(c) for c in configs])
    assert np.allclose(table["loss"], truth, rtol=0.03)
    with pytest.raises(ValueError, match="misses"):
        law.predict_loss([{"n_params": 1e9}])


def test_a_law_over_runs_with_weight_decay_zero_proposes_and_predicts_without_log_of_zero():
    import random
    import warnings

    space = SearchSpace([LogParam("n_params", min=1e6, max=3e7),
                         LogParam("weight_decay", min=1e-4, max=1.0, allow_zero=True)], scaling=["n_params"])
    tuner = Tuner(space, seed=0)
    r = random.Random(0)
    for _ in range(40):
        n = math.exp(r.uniform(math.log(1e6), math.log(3e7)))
        wd = r.choice([0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
        tuner.add({"n_params": n, "weight_decay": wd}, loss=3 + 1e3 / n**0.5 + 0.3 * math.log1p(wd / 1e-4),
                  cost=6 * n * 1e6)
    law = tuner.scaling_law()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert law.propose(n_params=1e8)["weight_decay"] == 0.0  # the best is "off", at every size
    df = law.predict_loss([{"n_params": 1e8, "weight_decay": 0.0}, {"n_params": 1e8, "weight_decay": 0.1}])
    assert np.isfinite(df.to_numpy()).all() and df["loss"].iloc[0] < df["loss"].iloc[1]


def test_an_exponent_of_undetermined_sign_is_said_so_and_widens_the_interval_beyond_the_runs() -> None:
    """lr* falls with n_params and does not move with tokens: the law keeps the n_params exponent
    as determined, says the tokens exponent's sign is not determined (notes, curves), and its lr
    interval at 100x the runs' tokens is wider than within them."""
    from carbs_like.scaling.curves import relation_curves

    space = SearchSpace([LogParam("n_params", min=1e4, max=1e6), LogParam("tokens", min=1e5, max=1e7),
                         LogParam("lr", center=3e-3)], scaling=["n_params", "tokens"])
    rng = np.random.default_rng(0)
    tuner = Tuner(space, seed=0)
    for _ in range(80):
        N, D = (math.exp(rng.uniform(math.log(a), math.log(b))) for a, b in ((1e4, 1e6), (1e5, 1e7)))
        opt = 3e-3 * (N / 1e5) ** -0.5
        lr = opt * math.exp(0.7 * rng.standard_normal())
        loss = (2 + 30 * N**-0.3 + 40 * D**-0.3) * (1 + 0.05 * math.log(lr / opt) ** 2) * math.exp(0.01 * rng.standard_normal())
        tuner.add({"n_params": N, "tokens": D, "lr": lr}, loss=loss, cost=N * D / 1e10)
    law = ScalingLaw.fit(tuner, n_bootstrap=16)
    rel = law.relations["lr"]
    assert rel.uncertain == ("tokens",) and rel.held == ()
    assert rel.slopes[0] == pytest.approx(-0.5, abs=0.1) and abs(rel.slopes[1]) < 0.1
    within, beyond = law.predict(n_params=1e5, tokens=1e6), law.predict(n_params=1e5, tokens=1e8)
    assert any("tokens" in n and "do not determine which way" in n for n in within.notes)
    width = [math.log(p.intervals["lr"][1] / p.intervals["lr"][0]) for p in (within, beyond)]
    assert width[1] > 1.3 * width[0]  # (both also carry the spread between the two surfaces)
    curves = relation_curves(law)[0]
    assert [c.determined for c in curves] == [True, True]
    assert [c.uncertain for c in curves] == [False, True]


def test_an_interval_that_runs_past_a_bound_is_not_clamped_to_zero_width() -> None:
    """lr* falls with n_params and at 100x the runs' largest size lies below the space's min: the
    proposal is clamped to the min, but its interval reaches past it to hold the true optimum
    (clamping both ends gave [min, min], certain of a value the runs do not support), and the
    notes say the interval runs past the min."""
    lo_lr = 2e-4
    space = SearchSpace([LogParam("n_params", min=1e4, max=1e6), LogParam("tokens", min=1e5, max=1e7),
                         LogParam("lr", min=lo_lr, max=3e-2)], scaling=["n_params", "tokens"])
    rng = np.random.default_rng(0)
    tuner = Tuner(space, seed=0)
    for _ in range(80):
        N, D = (math.exp(rng.uniform(math.log(a), math.log(b))) for a, b in ((1e4, 1e6), (1e5, 1e7)))
        opt = 3e-3 * (N / 1e5) ** -0.5
        lr = float(np.clip(opt * math.exp(0.7 * rng.standard_normal()), lo_lr, 3e-2))
        loss = (2 + 30 * N**-0.3 + 40 * D**-0.3) * (1 + 0.05 * math.log(lr / opt) ** 2) * math.exp(0.01 * rng.standard_normal())
        tuner.add({"n_params": N, "tokens": D, "lr": lr}, loss=loss, cost=N * D / 1e10)
    law = ScalingLaw.fit(tuner, n_bootstrap=16)
    truth = 3e-3 * (1e8 / 1e5) ** -0.5  # 9.5e-5, below the min
    with pytest.warns(UserWarning, match="clamped"):
        pred = law.predict(n_params=1e8, tokens=1e6)
    lo, hi = pred.intervals["lr"]
    assert pred.config["lr"] == pytest.approx(lo_lr)
    assert lo < truth < lo_lr <= hi, (lo, hi)
    assert any("lr" in n and "runs past" in n and "min=0.0002" in n for n in pred.notes)
    inside = law.predict(n_params=1e5, tokens=1e6)  # well inside: an interval within the bounds, no such note
    assert lo_lr <= inside.intervals["lr"][0] < inside.intervals["lr"][1] <= 3e-2
    assert not any("runs past" in n for n in inside.notes)


def test_a_lopsided_valley_is_fitted_as_one_and_its_optimum_found() -> None:
    """The real loss rises faster above the best lr than below it. A symmetric bowl centres on the
    flat (low-lr) side; the lopsided surface finds the optimum, and the law (which compares the
    two at held-out scales) uses it."""
    from carbs_like.scaling.surface import fit_surface

    space = SearchSpace([LogParam("n_params", min=1e4, max=1e6), LogParam("tokens", min=1e5, max=1e7),
                         LogParam("lr", min=1e-5, max=1.0)], scaling=["n_params", "tokens"])
    rng = np.random.default_rng(0)
    tuner = Tuner(space, seed=0)
    for _ in range(120):
        N, D = (math.exp(rng.uniform(math.log(a), math.log(b))) for a, b in ((1e4, 1e6), (1e5, 1e7)))
        opt = 3e-3 * (N / 1e5) ** -0.5
        d = 1.2 * rng.standard_normal()
        lr = opt * math.exp(d)
        excess = (0.12 if d > 0 else 0.015) * d**2  # doubling lr costs ~6%, halving it ~0.7%
        loss = (2 + 30 * N**-0.3 + 40 * D**-0.3) * (1 + excess) * math.exp(0.002 * rng.standard_normal())
        tuner.add({"n_params": N, "tokens": D, "lr": lr}, loss=loss, cost=N * D / 1e10)
    from carbs_like.scaling.law import _runs

    runs, _, _ = _runs(space, tuner.observed_data())
    x = np.log([[1e5, 1e6]])
    errors = {}
    for sided in (True, False):
        fit = fit_surface(runs, axes=space.scaling, n_choices=[], n_bootstrap=0, seed=0, sided=sided)
        errors[sided] = abs(float((fit.intercepts[0] + x @ fit.slopes[0])[0]) - math.log(3e-3))
    assert errors[True] < 0.1 and 0.3 < errors[False], errors  # natural-log units of lr
    lr = ScalingLaw.fit(tuner, n_bootstrap=0).propose(n_params=1e5, tokens=1e6)["lr"]
    assert abs(math.log(lr / 3e-3)) < 0.1, lr
