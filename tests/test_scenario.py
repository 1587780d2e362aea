import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gelato_jax import Scenario


def test_scenario_defaults_match_model_section9():
    s = Scenario()
    assert math.isclose(10 * math.log10(float(s.mean_snr)), 21.57, abs_tol=0.01)  # "≈ 21.6 dB"
    assert math.isclose(float(s.tau_d), 0.015, rel_tol=1e-12)
    assert math.isclose(float(s.e_d), 0.030, rel_tol=1e-12)
    # PL_dB = 128.1 + 37.6 log10(0.3); g0 = 10^(-PL/10)
    pl = 128.1 + 37.6 * math.log10(0.3)
    assert math.isclose(float(s.g0), 10 ** (-pl / 10), rel_tol=1e-12)
    # N0 = -174 dBm/Hz + 7 dB NF = -197 dBW/Hz
    assert math.isclose(float(s.N0), 10 ** (-19.7), rel_tol=1e-12)
    assert s.gamma_max == 10 and s.m_max == 1024 and s.E_bar == 0.06


BAD = [
    ("W", float("nan")),
    ("W", 0.0),
    ("W", -1e6),
    ("W_dl", float("inf")),
    ("P_tx", -0.2),
    ("d", 0.0),
    ("rho", 1.0),
    ("rho", -0.1),
    ("r_min", -1.0),
    ("c_d", 0.0),
    ("f", float("-inf")),
    ("kappa", -1.0),
    ("t_v1", -0.001),
    ("delta", float("nan")),
    ("b_id", 0.0),
    ("c_p", -2.0),
    ("m_max", 0),
    ("m_max", 2.5),
    ("gamma_max", 0),
    ("gamma_max", -3),
    ("gamma_max", "10"),
    ("gamma_max", True),
    ("k_H", 0.0),
    ("theta_H", -1.0),
    ("rho_H", 1.0),
    ("a1", -0.5),
    ("E_bar", 0.0),
    ("E_bar", "0.06"),
    ("channel", "awgn"),
    ("energy_arrival", "solar"),
    ("channel_trace", [1.0, -1.0]),
]


@pytest.mark.parametrize("field,value", BAD)
def test_scenario_invalid_value_names_field(field, value):
    with pytest.raises(ValueError) as err:
        Scenario(**{field: value})
    assert f"Scenario.{field}" in str(err.value)


def test_scenario_cross_field_checks():
    with pytest.raises(ValueError, match="t_v0"):
        Scenario(t_v0=0.0, delta=0.0)
    with pytest.raises(ValueError, match="channel_trace"):
        Scenario(channel="trace")


def test_scenario_unknown_field_and_replace():
    with pytest.raises(ValueError, match="unknown field"):
        Scenario(bandwidth=1.0)
    s = Scenario().replace(W=2e6)
    assert s.W == 2e6
    with pytest.raises(ValueError, match="Scenario.W"):
        s.replace(W=-1.0)
    with pytest.raises(ValueError, match="unknown field"):
        s.replace(Wx=1.0)


def test_scenario_is_a_pytree_that_vmaps_without_revalidation():
    s = Scenario()
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), s)  # leaves only: static stay
    out = jax.vmap(lambda sc: sc.W * sc.E_bar)(stacked)
    np.testing.assert_allclose(out, [1e6 * 0.06, 4e6 * 0.06])
    assert jax.jit(lambda sc: sc.tau_d)(s) == pytest.approx(0.015)
    # static fields are not leaves
    names = {path[0].name for path, _ in jax.tree_util.tree_flatten_with_path(s)[0]}
    assert "W" in names and "V_vocab" in names
    assert not names & {"gamma_max", "m_max", "channel", "energy_arrival"}


def test_scenario_from_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[scenario]\nW = 2e6\ngamma_max = 6\nchannel = 'gauss_markov'\nrho = 0.9\n")
    s = Scenario.from_toml(p)
    assert (s.W, s.gamma_max, s.channel, s.rho) == (2e6, 6, "gauss_markov", 0.9)
    p.write_text("W = -1\n")
    with pytest.raises(ValueError, match="Scenario.W"):
        Scenario.from_toml(p)
    p.write_text("Wx = 1\n")
    with pytest.raises(ValueError, match="unknown field"):
        Scenario.from_toml(p)
    p.write_text("W = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        Scenario.from_toml(p)
    with pytest.raises(ValueError, match="does not exist"):
        Scenario.from_toml(tmp_path / "missing.toml")
