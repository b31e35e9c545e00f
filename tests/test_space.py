"""SearchSpace: param space <-> search space round trips, rounding, validation, files."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from carbs_like import ChoiceParam, LinearParam, LogitParam, LogParam, SearchSpace


def make_space() -> SearchSpace:
    return SearchSpace(
        [
            LogParam("n_params", min=1e6, max=3e7),
            LogParam("tokens", min=1e7, max=3e9),
            LogParam("lr", center=1e-3),
            LogParam("batch_size", min=8, max=4096, integer=True, multiple=8),
            LinearParam("warmup", min=0.0, max=0.3),
            LogitParam("beta2_gap", center=0.05),
            ChoiceParam("schedule", ["cosine", "wsd", "linear"]),
        ],
        scaling=["n_params", "tokens"],
    )


configs = st.fixed_dictionaries(
    {
        "n_params": st.floats(1e6, 3e7),
        "tokens": st.floats(1e7, 3e9),
        "lr": st.floats(1e-6, 1.0),
        "batch_size": st.integers(1, 512).map(lambda k: 8 * k),
        "warmup": st.floats(0.0, 0.3),
        "beta2_gap": st.floats(2e-4, 0.9),  # within the LogitParam's reach (center 0.05, scale 2)
        "schedule": st.sampled_from(["cosine", "wsd", "linear"]),
    }
)


@settings(max_examples=60, deadline=None)
@given(configs)
def test_param_to_search_to_param_round_trip(config):
    space = make_space()
    back = space.to_configs(space.to_search([config]))[0]
    assert back.keys() == config.keys()
    for name, value in config.items():
        if isinstance(value, str) or isinstance(value, int):
            assert back[name] == value
        else:
            assert math.isclose(back[name], value, rel_tol=1e-9, abs_tol=1e-12)


def test_search_coordinates_are_unit_scaled_on_bounds_and_log_transformed():
    space = make_space()
    U = space.to_search([
        {"n_params": 1e6, "tokens": 3e9, "lr": 1e-3, "batch_size": 8, "warmup": 0.15,
         "beta2_gap": 0.05, "schedule": "wsd"}
    ])[0]
    assert U[space.columns("n_params")].item() == pytest.approx(0.0)
    assert U[space.columns("tokens")].item() == pytest.approx(1.0)
    assert U[space.columns("lr")].item() == pytest.approx(0.5)  # the center of an unbounded param
    assert U[space.columns("warmup")].item() == pytest.approx(0.5)
    assert U[space.columns("schedule")].tolist() == [0.0, 1.0, 0.0]
    # Geometric midpoint of a LogParam lands at 0.5.
    mid = space.to_search([{"n_params": math.sqrt(1e6 * 3e7), "tokens": 1e7, "lr": 1e-3, "batch_size": 8,
                            "warmup": 0.0, "beta2_gap": 0.05, "schedule": "wsd"}])[0]
    assert mid[space.columns("n_params")].item() == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.5, 2.5), min_size=9, max_size=9))
def test_round_is_idempotent_and_matches_decoding(row):
    space = make_space()
    U = torch.tensor([row], dtype=torch.float64)
    R = space.round(U)
    assert torch.equal(space.round(R), R)
    # round(U) encodes exactly what to_configs(U) decodes.
    assert torch.allclose(space.to_search(space.to_configs(U)), R, atol=1e-9)
    cfg = space.to_configs(U)[0]
    assert cfg["batch_size"] % 8 == 0 and 8 <= cfg["batch_size"] <= 4096
    assert 1e6 <= cfg["n_params"] <= 3e7
    assert cfg["schedule"] in ("cosine", "wsd", "linear")
    assert 0.0 < cfg["beta2_gap"] < 1.0


def test_integer_rounding_respects_multiple_and_bounds():
    p = LogParam("batch_size", min=10, max=100, integer=True, multiple=8)
    space = SearchSpace([p])
    U = torch.linspace(-0.5, 1.5, 41, dtype=torch.float64).unsqueeze(-1)
    values = [c["batch_size"] for c in space.to_configs(U)]
    assert all(isinstance(v, int) and v % 8 == 0 and 16 <= v <= 96 for v in values)
    assert min(values) == 16 and max(values) == 96


def test_unbounded_param_can_be_searched_beyond_its_nominal_range():
    space = SearchSpace([LogParam("lr", center=1e-3, scale=10.0)])
    assert space.limits[0, 0] < 0 and space.limits[1, 0] > 1
    far = space.to_configs(torch.tensor([[1.8]], dtype=torch.float64))[0]["lr"]
    assert far > 1e-2  # beyond center * scale
    assert space.to_configs(torch.tensor([[0.0]], dtype=torch.float64))[0]["lr"] == pytest.approx(1e-4)


def test_keys_identify_configs_after_rounding():
    space = SearchSpace([LogParam("bs", min=8, max=64, integer=True, multiple=8), LinearParam("x", min=0, max=1)])
    U = torch.tensor([[0.5, 0.2], [0.5001, 0.2], [0.5, 0.3]], dtype=torch.float64)
    k = space.keys(U)
    assert k[0] == k[1] and k[0] != k[2]


def test_sobol_is_deterministic_continues_and_fills_the_box():
    space = make_space()
    a = space.sobol(8, seed=3)
    b = torch.cat([space.sobol(4, seed=3), space.sobol(4, seed=3, skip=4)])
    assert torch.equal(a, b)
    assert not torch.equal(a, space.sobol(8, seed=4))
    big = space.sobol(256, seed=0)
    num = big[:, space.columns("n_params")]
    assert num.min() < 0.05 and num.max() > 0.95
    assert len(set(space.keys(big))) == 256


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: LogParam("lr", min=1.0, max=0.1), "min .* must be below max"),
        (lambda: LogParam("lr", min=1e-4, max=1e-2, center=1.0), "center .* outside the bounds"),
        (lambda: LogParam("lr"), "give both min and max, or a center"),
        (lambda: LogParam("lr", min=-1.0, max=1.0), "positive min"),
        (lambda: LinearParam("x", min=0, max=1, multiple=4), "needs integer=True"),
        (lambda: LogitParam("p", min=0.0, max=0.5), "strictly inside"),
        (lambda: ChoiceParam("s", ["a", "a"]), "duplicate choices"),
        (lambda: ChoiceParam("s", "ab"), "choices must be a list"),
        (lambda: SearchSpace([LogParam("a", min=1, max=2), LogParam("a", min=1, max=2)]), "duplicate param names"),
        (lambda: SearchSpace([LogParam("a", min=1, max=2)], scaling=["b"]), "scaling axis 'b' is not a param"),
        (lambda: SearchSpace([ChoiceParam("c", [1, 2])], scaling=["c"]), "must be numeric"),
        (lambda: LogParam("lr", min=float("nan"), max=1.0), "finite number"),
    ],
)
def test_bad_params_and_spaces_raise_clear_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_validate_names_the_offending_param():
    space = make_space()
    good = space.to_configs(space.sobol(1, seed=0))[0]
    with pytest.raises(ValueError, match=r"missing param\(s\) \['lr'\]"):
        space.validate({k: v for k, v in good.items() if k != "lr"})
    with pytest.raises(ValueError, match=r"unknown param\(s\) \['momentum'\]"):
        space.validate({**good, "momentum": 0.9})
    with pytest.raises(ValueError, match="n_params=.* is above its max"):
        space.validate({**good, "n_params": 1e9})
    with pytest.raises(TypeError, match="lr: expected a number"):
        space.validate({**good, "lr": "fast"})
    with pytest.raises(ValueError, match="schedule='step' is not one of"):
        space.validate({**good, "schedule": "step"})
    with pytest.raises(ValueError, match="lr=.*must be positive"):
        space.validate({**good, "lr": -1e-3})


def test_dict_round_trip_and_equality():
    space = make_space()
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space
    assert again.scaling == ("n_params", "tokens")


def test_load_from_toml_and_yaml_and_errors_name_the_key(tmp_path):
    toml = tmp_path / "space.toml"
    toml.write_text(
        'scaling = ["n_params"]\n'
        '[params.n_params]\nkind = "log"\nmin = 1e6\nmax = 1e8\n'
        '[params.lr]\nkind = "log"\ncenter = 1e-3\n'
        '[params.schedule]\nkind = "choice"\nchoices = ["cosine", "wsd"]\n'
    )
    space = SearchSpace.from_file(toml)
    assert space.names == ["n_params", "lr", "schedule"] and space.scaling == ("n_params",)

    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("scaling: [n]\nparams:\n  - {name: n, kind: log, min: 1.0, max: 10.0}\n")
    assert SearchSpace.from_file(yaml_file).names == ["n"]

    bad = tmp_path / "bad.toml"
    bad.write_text('[params.lr]\nkind = "log"\ncentre = 1e-3\n')
    with pytest.raises(ValueError, match=r"param 'lr': unknown key\(s\) \['centre'\]"):
        SearchSpace.from_file(bad)
    bad.write_text('[params.lr]\nkind = "logg"\ncenter = 1e-3\n')
    with pytest.raises(ValueError, match="'kind' must be one of"):
        SearchSpace.from_file(bad)
    bad.write_text('[params.lr\nkind = "log"\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        SearchSpace.from_file(bad)
    bad.write_text('scalling = ["lr"]\n[params.lr]\nkind = "log"\ncenter = 1e-3\n')
    with pytest.raises(ValueError, match=r"unknown top-level key\(s\) \['scalling'\]"):
        SearchSpace.from_file(bad)
    with pytest.raises(FileNotFoundError):
        SearchSpace.from_file(tmp_path / "missing.toml")


def test_a_toml_space_loads_without_tomllib_through_the_tomli_fallback(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib; the declared fallback (tomli) must be the only TOML reader used,
    also on the CLI's path (carbs-like tune x.toml)."""
    import sys
    import tomllib

    from carbs_like.cli.experiment import load_space

    file = tmp_path / "space.toml"
    file.write_text('scaling = ["n"]\n[params.n]\nkind = "log"\nmin = 1e6\nmax = 1e8\n'
                    '[params.lr]\nkind = "log"\ncenter = 1e-3\n')
    used = []

    class Tomli:  # stands in for the tomli package, counting its use
        TOMLDecodeError = tomllib.TOMLDecodeError

        @staticmethod
        def loads(text):
            used.append(text)
            return tomllib.loads(text)

    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` now raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "tomli", Tomli)
    for space in (SearchSpace.from_file(file), load_space(file)):
        assert space.names == ["n", "lr"] and space.scaling == ("n",)
    assert len(used) == 2


# --- LogParam(allow_zero=True) ---------------------------------------------------------------
def _wd(**kw):
    return LogParam("weight_decay", min=1e-4, max=1.0, allow_zero=True, **kw)


def test_allow_zero_round_trips_zero_and_keeps_min_and_max_at_their_ends():
    from carbs_like.params import ZERO_GAP

    p = _wd()
    U = p.to_search([0.0, 1e-4, 1.0, 1e-2])
    assert U[:, 0].tolist() == pytest.approx([-ZERO_GAP, 0.0, 1.0, 0.5])
    assert p.to_params(U) == pytest.approx([0.0, 1e-4, 1.0, 1e-2])
    assert p.to_params(U)[0] == 0.0
    assert p.limits() == ([-ZERO_GAP], [1.0])
    # The lower half of the gap snaps to exactly 0, the upper half to min.
    below = torch.tensor([[-ZERO_GAP], [-0.6 * ZERO_GAP], [-0.4 * ZERO_GAP]], dtype=torch.float64)
    assert p.to_params(below) == pytest.approx([0.0, 0.0, 1e-4])
    assert p.to_params(below)[1] == 0.0
    # Transformed units never take log(0); untransform gives 0 back.
    t = p.transform([0.0, 1e-4])
    assert all(math.isfinite(v) for v in t)
    assert p.untransform(t).tolist() == pytest.approx([0.0, 1e-4])
    assert p.from_transformed(float(t[0])) == (0.0, False)


def test_allow_zero_in_a_space_and_with_integers():
    space = SearchSpace([_wd(), LogParam("n", min=1e3, max=1e6)], scaling=["n"])
    U = space.to_search([{"weight_decay": 0, "n": 1e4}])
    assert space.to_configs(U)[0]["weight_decay"] == 0.0
    assert space.to_configs(space.sobol(64, seed=0))  # every sobol point decodes
    q = LogParam("k", min=8, max=64, integer=True, multiple=8, allow_zero=True)
    assert q.to_params(q.to_search([0, 8, 64])) == [0, 8, 64]


def test_allow_zero_rejects_values_between_zero_and_min_and_negatives_clearly():
    p = _wd()
    with pytest.raises(ValueError, match=r"weight_decay=1e-05 lies between 0 and its min 0.0001.*use 0"):
        p.validate(1e-5)
    with pytest.raises(ValueError, match="weight_decay=-0.1.*not negative"):
        p.validate(-0.1)
    with pytest.raises(ValueError, match="allow_zero=True needs a min"):
        LogParam("wd", center=1e-3, allow_zero=True)
    with pytest.raises(ValueError, match=r"to allow exactly 0 use .*allow_zero=True"):
        LogParam("wd", center=1e-3, min=1e-4).validate(0.0)
    with pytest.raises(TypeError, match="allow_zero must be True or False"):
        LogParam("wd", min=1e-4, max=1.0, allow_zero="yes")


def test_allow_zero_is_serialized_only_when_set_and_old_files_still_load():
    plain = SearchSpace([LogParam("weight_decay", min=1e-4, max=1.0)])
    assert "allow_zero" not in plain.to_dict()["params"][0]
    old = {"params": [{"kind": "log", "name": "weight_decay", "min": 1e-4, "max": 1.0, "center": None,
                       "scale": None, "integer": False, "multiple": None}], "scaling": []}
    assert SearchSpace.from_dict(old) == plain and plain.to_dict() == old
    space = SearchSpace([_wd()])
    assert space.to_dict()["params"][0]["allow_zero"] is True
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_allow_zero_in_a_toml_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[params.weight_decay]\nkind = "log"\nmin = 1e-4\nmax = 1.0\nallow_zero = true\n')
    space = SearchSpace.from_file(f)
    assert space["weight_decay"] == _wd()
