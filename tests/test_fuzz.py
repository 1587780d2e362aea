"""Bad-input fuzzing (issue 9): Scenario, policies, ``gelato simulate`` flags and TOML files.

Every invalid input must raise ``ValueError`` (CLI: exit status 2 with exactly one line on stderr,
no traceback, no file written under ``--out``) naming the field and its allowed range. Valid
values drawn from the same tables must be accepted, so the checks are two-sided. The allowed
ranges below are written out from docs/model.md §9 and the documented field ranges, independently
of the validators in gelato_jax/pytree.py.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gelato_jax import Scenario
from gelato_jax import policies
from gelato_jax.cli import main
from gelato_jax.policies import Gelato, StaticSD
from gelato_jax.pytree import field_names, leaf_fields

INF = math.inf
# field: (lo, hi, lo_open, hi_open) — the documented allowed range of each real leaf
SCENARIO_REAL = {
    "W": (0, INF, True, True),
    "W_dl": (0, INF, True, True),
    "P_tx": (0, INF, True, True),
    "P_edge": (0, INF, True, True),
    "N0_dBm_Hz": (-300, 0, False, False),
    "NF_dB": (0, 100, False, False),
    "d": (0, 1e6, True, False),
    "rho": (0, 1, False, True),
    "h_min": (0, 1, True, False),
    "r_min": (0, INF, False, True),
    "c_d": (0, INF, True, True),
    "f": (0, INF, True, True),
    "kappa": (0, INF, True, True),
    "t_v0": (0, INF, False, True),
    "t_v1": (0, INF, False, True),
    "delta": (0, INF, False, True),
    "V_vocab": (1, INF, False, True),
    "b_id": (0, INF, True, True),
    "b_prob": (0, INF, True, True),
    "b_dl": (0, INF, False, True),
    "c_p": (0, INF, True, True),
    "k_H": (0.05, 1e3, False, False),
    "theta_H": (0, 1e4, True, False),
    "rho_H": (0, 1, False, True),
    "a0": (-1e3, 1e3, False, False),
    "a1": (0, 1e3, False, False),
    "E_bar": (0, INF, True, True),
}
SCENARIO_INT = {"gamma_max": (1, 256), "m_max": (1, 1_000_000)}
SCENARIO_CHOICE = {"channel": ("rayleigh", "gauss_markov", "trace"), "energy_arrival": ("constant", "exponential", "uniform")}
GELATO_REAL = {"V": (0, INF, False, True), "H_th": (0, INF, False, True), "Theta_th": (0, INF, False, True), "ewma_beta": (0, 1, True, False)}
GELATO_CHOICE = {"proxy": ("mean", "ewma", "exact"), "exit": ("bucket", "marginal", "none"), "payload": ("topp", "full", "scalar")}


def fmt_range(lo, hi, lo_open, hi_open) -> str:
    """``(0, inf)``, ``[0, 1)``, ``[-300, 0]``, … as the error messages print it."""
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def in_range(x: float, lo, hi, lo_open, hi_open) -> bool:
    return math.isfinite(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)


WRONG_TYPES = st.sampled_from(["1.0", "", None, {}, {"a": 1}, 1j, True, False, object(), [1.0, 2.0], (0.5,), [[1.0]]])


@st.composite
def bad_real(draw, lo, hi, lo_open, hi_open):
    """A value outside ``range``: non-finite, just outside a bound, far outside, or a wrong type."""
    kind = draw(st.sampled_from(["nonfinite", "below", "above", "type"]))
    if kind == "nonfinite":
        return draw(st.sampled_from([math.nan, INF, -INF]))
    if kind == "below" and lo is not None:
        return lo if lo_open else draw(st.sampled_from([math.nextafter(lo, -INF), lo - 1.0, lo - 1e300, -1e308]))
    if kind == "above" and math.isfinite(hi):
        return hi if hi_open else draw(st.sampled_from([math.nextafter(hi, INF), hi + 1.0, hi * 10 + 1, 1e308]))
    return draw(WRONG_TYPES)


def good_real(lo, hi, lo_open, hi_open):
    lo2 = math.nextafter(lo, INF) if lo_open else lo
    hi2 = min(math.nextafter(hi, -INF) if hi_open else hi, 1e300)
    return st.floats(lo2, hi2, allow_nan=False, allow_infinity=False)


def assert_rejected(make, owner: str, field: str, rng: str | None):
    with pytest.raises(ValueError) as err:
        make()
    msg = str(err.value)
    assert f"{owner}.{field}" in msg, msg
    assert len(msg.splitlines()) == 1, msg
    if rng is not None:
        assert rng in msg, f"allowed range {rng} not named: {msg}"


# ----------------------------------------------------------------------------- Scenario
@pytest.mark.parametrize("field", sorted(SCENARIO_REAL))
@given(data=st.data())
def test_scenario_real_field_rejects_bad_and_accepts_good(field, data):
    lo, hi, lo_open, hi_open = SCENARIO_REAL[field]
    value = data.draw(bad_real(lo, hi, lo_open, hi_open), label="bad")
    assert_rejected(lambda: Scenario(**{field: value}), "Scenario", field, fmt_range(lo, hi, lo_open, hi_open))
    assert_rejected(lambda: Scenario().replace(**{field: value}), "Scenario", field, None)
    good = data.draw(good_real(lo, hi, lo_open, hi_open), label="good")
    if field in ("t_v0", "delta") and good == 0:
        good = 1e-3  # t_v0 + delta > 0 is a cross-field rule, tested below
    assert getattr(Scenario(**{field: good}), field) == good


@pytest.mark.parametrize("field", sorted(SCENARIO_INT))
@given(data=st.data())
def test_scenario_int_field(field, data):
    lo, hi = SCENARIO_INT[field]
    bad = data.draw(
        st.one_of(
            st.sampled_from([lo - 1, hi + 1, -(2**70), 2**70, 2.5, math.nan, INF, float(hi + 1)]),
            WRONG_TYPES,
        )
    )
    assert_rejected(lambda: Scenario(**{field: bad}), "Scenario", field, fmt_range(lo, hi, False, False))
    good = data.draw(st.integers(lo, min(hi, 64)))
    assert getattr(Scenario(**{field: good}), field) == good


@pytest.mark.parametrize("field", sorted(SCENARIO_CHOICE))
@given(bad=st.one_of(st.text(max_size=12), WRONG_TYPES))
def test_scenario_choice_field(field, bad):
    allowed = SCENARIO_CHOICE[field]
    if bad in allowed:
        return
    assert_rejected(lambda: Scenario(**{field: bad}), "Scenario", field, None)
    with pytest.raises(ValueError) as err:
        Scenario(**{field: bad})
    assert all(a in str(err.value) for a in allowed)


@given(
    trace=st.one_of(
        st.lists(st.sampled_from([0.0, -1.0, math.nan, INF, -INF]), min_size=1, max_size=4).map(lambda x: [1.0, *x]),
        st.just([]),
        st.just([[1.0, 2.0]]),
        st.sampled_from(["abc", {}, object(), 3.0]),
    )
)
def test_scenario_channel_trace_rejects_bad(trace):
    assert_rejected(lambda: Scenario(channel="trace", channel_trace=trace), "Scenario", "channel_trace", None)


@given(name=st.text(min_size=1, max_size=20).filter(lambda n: n not in field_names(Scenario)))
def test_scenario_unknown_fields_rejected(name):
    with pytest.raises(ValueError, match="unknown field"):
        Scenario(**{name: 1.0})
    with pytest.raises(ValueError, match="unknown field"):
        Scenario.from_dict({name: 1.0})


def test_scenario_cross_field_rules():
    assert_rejected(lambda: Scenario(t_v0=0.0, delta=0.0), "Scenario", "t_v0", None)
    assert_rejected(lambda: Scenario(channel="trace"), "Scenario", "channel_trace", None)


# ----------------------------------------------------------------------------- policies
@pytest.mark.parametrize("field", sorted(GELATO_REAL))
@given(data=st.data())
def test_gelato_real_fields(field, data):
    lo, hi, lo_open, hi_open = GELATO_REAL[field]
    bad = data.draw(bad_real(lo, hi, lo_open, hi_open))
    assert_rejected(lambda: Gelato(**{field: bad}), "Gelato", field, fmt_range(lo, hi, lo_open, hi_open))
    good = data.draw(good_real(lo, hi, lo_open, hi_open))
    assert getattr(Gelato(**{field: good}), field) == good


@pytest.mark.parametrize("field", sorted(GELATO_CHOICE))
@given(bad=st.one_of(st.text(max_size=10), WRONG_TYPES))
def test_gelato_choice_fields(field, bad):
    if bad in GELATO_CHOICE[field]:
        return
    assert_rejected(lambda: Gelato(**{field: bad}), "Gelato", field, None)


@given(bad=st.one_of(st.sampled_from([-1, 257, 2.5, math.nan, INF, -INF]), WRONG_TYPES), gmax=st.integers(1, 20))
def test_static_sd_gamma(bad, gmax):
    assert_rejected(lambda: StaticSD(gamma=bad), "StaticSD", "gamma", None)
    # a gamma above the scenario's gamma_max is rejected before any compilation
    pol = StaticSD(gamma=min(gmax + 1, 256))
    from gelato_jax import sample_exogenous, rollout

    scen = Scenario(gamma_max=gmax)
    with pytest.raises(ValueError, match=r"StaticSD\.gamma"):
        pol.validate(scen)


@pytest.mark.parametrize("name", sorted(policies.REGISTRY))
@given(bad=st.sampled_from([math.nan, INF, -INF, "abc", None, 1j, {}]))
def test_every_policy_rejects_nonfinite_and_wrong_types(name, bad):
    """Every numeric field of every registered policy rejects NaN, ±inf and wrong types with a
    ValueError naming ``Class.field``."""
    cls = policies.REGISTRY[name]
    numeric = [n for n in leaf_fields(cls) if isinstance(cls.__dataclass_fields__[n].default, (int, float))]
    numeric = [n for n in numeric if not isinstance(cls.__dataclass_fields__[n].default, bool)]
    for field in numeric:
        if field == "T_star":  # the oracle's reported optimum is an output, not a knob
            continue
        assert_rejected(lambda: cls(**{field: bad}), cls.__name__, field, None)
    with pytest.raises(ValueError, match="unknown field"):
        cls(not_a_field=1.0)


@given(name=st.text(max_size=12).filter(lambda n: n.lower().replace("_", "-") not in policies.REGISTRY))
def test_make_unknown_policy(name):
    with pytest.raises(ValueError, match="policy must be one of"):
        policies.make(name)


# ----------------------------------------------------------------------------- CLI
SMALL = ["simulate", "--realizations", "1", "--rounds", "2", "--quiet"]


def run_cli(argv, needles=()):
    """Run ``gelato`` in-process with ``--out`` into a fresh folder; assert the bad-input contract."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = os.path.join(tmp, "out")
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([*SMALL, "--out", out_dir, *argv])
        msg = err.getvalue()
        assert code == 2, (argv, code, msg)
        lines = msg.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in msg, (argv, msg)
        for needle in needles:
            assert needle in msg, (argv, needle, msg)
        assert not os.path.exists(out_dir) or not os.listdir(out_dir), (argv, os.listdir(out_dir))
        return lines[0]


def _fmt_cli(x) -> str:
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, (list, tuple)):
        return ",".join(_fmt_cli(v) for v in x)
    return str(x)


@st.composite
def bad_set_assignment(draw):
    """``--set field=value`` with a value outside the field's range (as command-line text)."""
    table = {**{k: ("Scenario", v) for k, v in SCENARIO_REAL.items()}, **{k: ("Gelato", v) for k, v in GELATO_REAL.items()}}
    field = draw(st.sampled_from(sorted(table)))
    owner, (lo, hi, lo_open, hi_open) = table[field]
    value = draw(
        st.one_of(
            bad_real(lo, hi, lo_open, hi_open).filter(lambda v: isinstance(v, float)).map(_fmt_cli),
            st.sampled_from(["nan", "inf", "-inf", "abc", "", "true", "1,2", "1e999", "0x10"]),
        )
    )
    return field, owner, value


@settings(max_examples=max(10, settings.default.max_examples))
@given(case=bad_set_assignment())
def test_cli_bad_set_values(case):
    field, owner, value = case
    run_cli(["--set", f"{field}={value}"], needles=(f"{owner}.{field}",))


@given(
    case=st.one_of(
        st.tuples(st.just("--set"), st.sampled_from(["gamma_max=0", "gamma_max=257", "gamma_max=2.5", "gamma_max=abc", "m_max=0", "m_max=1e7"]), st.just("Scenario.")),
        st.tuples(st.just("--set"), st.sampled_from(["channel=awgn", "channel=1", "energy_arrival=solar", "proxy=exact2", "exit=", "payload=zip"]), st.just("must be one of")),
        st.tuples(st.just("--set"), st.sampled_from(["channel_trace=abc", "channel_trace=-1,2", "channel_trace=0"]), st.just("channel_trace")),
        st.tuples(st.just("--set"), st.sampled_from(["zzz=1", "=1", "W", "Gelato.V=1"]), st.just("--set")),
        st.tuples(st.sampled_from(["--rounds", "--realizations", "--chunk"]), st.sampled_from(["0", "-1", "abc", "1.5", "", "nan", "1e3"]), st.just("--")),
        st.tuples(st.just("--seed"), st.sampled_from(["-1", "abc", "1.5", ""]), st.just("--seed")),
        st.tuples(st.just("--policy"), st.sampled_from(["bogus", "GELATO2", "static sd"]), st.just("--policy")),
    )
)
def test_cli_bad_flags(case):
    flag, value, needle = case
    run_cli([flag, value], needles=(needle,))


def test_cli_empty_policy_name_rejected():
    run_cli(["--policy", ""], needles=("--policy",))


def test_cli_unknown_flag_and_static_gamma_above_gamma_max():
    run_cli(["--bogus-flag"], needles=("unrecognized",))
    run_cli(["--policy", "static", "--set", "gamma=11"], needles=("StaticSD.gamma",))
    run_cli(["--policy", "static", "--set", "gamma_max=3", "--set", "gamma=4"], needles=("StaticSD.gamma",))


# ----------------------------------------------------------------------------- TOML files
TOML_CASES = [
    ("W = [\n", "not valid TOML"),
    ("[scenario\nW = 1\n", "not valid TOML"),
    ("W = 1e6\nW = 2e6\n", "not valid TOML"),
    ("\x00\x01\x02", "not valid TOML"),
    ("[scenario]\nbandwidth = 1e6\n", "unknown field"),
    ("[scenario]\nW = -1.0\n", "Scenario.W"),
    ("[scenario]\nW = 'fast'\n", "Scenario.W"),
    ("[scenario]\nW = [1e6, 2e6]\n", "Scenario.W"),
    ("[scenario]\nW = {a = 1}\n", "Scenario.W"),
    ("[scenario]\nW = nan\n", "Scenario.W"),
    ("[scenario]\nE_bar = inf\n", "Scenario.E_bar"),
    ("[scenario]\ngamma_max = 1.5\n", "Scenario.gamma_max"),
    ("[scenario]\ngamma_max = 0\n", "Scenario.gamma_max"),
    ("[scenario]\nchannel = 3\n", "Scenario.channel"),
    ("[scenario]\nchannel = 'trace'\n", "Scenario.channel_trace"),
    ("[scenario]\nchannel = 'trace'\nchannel_trace = [1.0, 0.0]\n", "Scenario.channel_trace"),
    ("[scenario]\nd = 1979-05-27\n", "Scenario.d"),
    ("[scenario]\nt_v0 = 0.0\ndelta = 0.0\n", "Scenario.t_v0"),
    ("[policy]\nname = 'nope'\n", "--policy"),
    ("[policy]\nname = 'gelato'\nV = -1\n", "Gelato.V"),
    ("[policy]\nname = 'gelato'\nVV = 1\n", "unknown field"),
    ("[policy]\nname = 'static'\ngamma = 99\n", "StaticSD.gamma"),
    ("[policy]\nname = 3\n", "--policy"),
    ("[extra]\nfoo = 1\n", "unknown table"),
    ("scenario = 3\n", "table"),
    ("policy = 'gelato'\n", "table"),
    ("[scenario.sub]\nW = 1\n", "Scenario"),
    ("bogus = 1\n", "unknown field"),
]


@pytest.mark.parametrize("text,needle", TOML_CASES, ids=[repr(getattr(c, "values", c)[0])[:30] for c in TOML_CASES])
def test_cli_bad_toml(text, needle, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(text.encode())
    run_cli(["--config", str(cfg)], needles=(needle,))


def test_cli_missing_and_unreadable_config(tmp_path):
    run_cli(["--config", str(tmp_path / "missing.toml")], needles=("does not exist",))
    run_cli(["--config", str(tmp_path)], needles=("does not exist",))  # a directory


@given(text=st.text(max_size=60))
def test_cli_random_toml_never_tracebacks(text):
    """Random text as a config file: either a clean run-free rejection (exit 2, one line) or a
    valid file; valid files are skipped (they would run a simulation)."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = None
    if data == {}:
        return  # an empty (or comment-only) config is valid: defaults
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "c.toml")
        with open(cfg, "w", encoding="utf-8") as fh:
            fh.write(text)
        run_cli(["--config", cfg])


def test_cli_out_path_that_is_a_file(tmp_path):
    """``--out`` naming an existing regular file: exit 2, one line, the file is untouched."""
    target = tmp_path / "occupied"
    target.write_text("keep")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*SMALL, "--out", str(target)])
    assert code == 2 and len(err.getvalue().strip().splitlines()) == 1 and "Traceback" not in err.getvalue()
    assert target.read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["occupied"]
