"""Every check of proofs_check passes on data satisfying its claim and fails on a constructed
counterexample (no check that cannot fail). Pure numpy: no compilation, fast.

Statistical inputs use fixed seeds; where a test asserts a pass on noisy data, the check's own
false-failure probability is ≤ 1e-3 (its documented α), and the seed is fixed, so the test is
deterministic.
"""

import numpy as np
import pytest

from proofs_check import checks
from proofs_check.verdict import Verdict, not_run, observation


def _queue_path(E, a):
    Z = np.zeros((E.shape[0], E.shape[1] + 1))
    for t in range(E.shape[1]):
        Z[:, t + 1] = np.maximum(Z[:, t] + E[:, t] - a[:, t], 0.0)
    return Z


@pytest.fixture
def paths():
    rng = np.random.default_rng(0)
    E = rng.uniform(0, 0.12, size=(5, 400))
    a = rng.exponential(0.06, size=(5, 400))
    return E, a, _queue_path(E, a)


# ----------------------------------------------------------------------------- verdict
def test_verdict_status_consistent():
    assert Verdict("c", 1.0, 2.0, None, True).status == "pass"
    assert Verdict("c", 1.0, 2.0, None, False).status == "FAIL"
    assert not_run("c", "why").passed is None and not_run("c", "why").status == "not run"
    assert observation("c", 1.0, 2.0, None, {"bound": 3}).status == "observation"
    with pytest.raises(ValueError):
        Verdict("c", 1.0, 2.0, None, True, status="FAIL")
    d = Verdict("c", float("inf"), None, (1.0, 2.0), False, {"x": np.arange(3)}).as_dict()
    assert d["statistic"] == float("inf") or d["statistic"] == "inf"
    assert d["details"]["x"] == [0, 1, 2]


# ----------------------------------------------------------------------------- claim 1
def test_per_slot_optimality_controller_passes_and_wrong_budget_fails():
    import jax
    import jax.numpy as jnp

    from gelato_jax.controller import dpp_budget

    rng = np.random.default_rng(1)
    n, G = 2000, 11
    T = np.sort(rng.uniform(10, 40, size=(n, G)), axis=1)
    E = np.sort(rng.uniform(0, 0.3, size=(n, G)), axis=1)
    E[:, 0] = 0.0
    V = rng.uniform(0, 1e-2, size=n)
    Z = rng.exponential(0.5, size=n)
    out = rng.random(n) < 0.1
    T[:50, 3] = T[:50, 4]  # exact ties
    E[:50, 3] = E[:50, 4]
    budget = np.asarray(jax.vmap(dpp_budget)(jnp.asarray(V), jnp.asarray(Z), jnp.asarray(T), jnp.asarray(E), jnp.asarray(out)))
    good = checks.check_per_slot_optimality(V, Z, T, E, out, budget)
    assert good.passed, good.details
    wrong = budget.copy()
    wrong[7] = (wrong[7] + 1) % G
    assert not checks.check_per_slot_optimality(V, Z, T, E, out, wrong).passed
    # a drafting budget in outage is never optimal, even when its objective would be larger
    i = int(np.flatnonzero(out)[0])
    in_outage = budget.copy()
    in_outage[i] = G - 1
    assert not checks.check_per_slot_optimality(V, Z, T, E, out, in_outage).passed
    # ties: the largest maximiser instead of the smallest is accepted only as a float tie (same U)
    tie = budget.copy()
    tie_rows = [k for k in range(50) if budget[k] == 3]
    if tie_rows:
        tie[tie_rows[0]] = 4
        assert checks.check_per_slot_optimality(V, Z, T, E, out, tie).details["float_ties_accepted"] >= 1


# ----------------------------------------------------------------------------- claim 2 + invariant
def test_energy_paths_pass_and_fail(paths):
    E, a, Z = paths
    assert checks.check_energy_paths(E, a, Z[:, -1]).passed
    E2 = E.copy()
    E2[2, 100] += 100.0  # energy spent but never entered the queue (beyond any wasted arrivals)
    v = checks.check_energy_paths(E2, a, Z[:, -1])
    assert v.passed is False and v.details["violations"] == 1
    # the time-average form (sweep output) agrees
    T = E.shape[1]
    assert checks.check_energy_paths(E.mean(1), a.mean(1), Z[:, -1], rounds=T).passed
    assert not checks.check_energy_paths(E2.mean(1), a.mean(1), Z[:, -1], rounds=T).passed


def test_drift_invariant_pass_and_fail(paths):
    E, a, Z = paths
    pen = np.random.default_rng(2).uniform(0, 1, size=E.shape)
    assert checks.check_drift_invariant(Z, E, a, 1e-3, pen).passed
    Zbad = Z.copy()
    Zbad[1, 50:] += 0.2  # the queue jumps without any energy spent
    assert checks.check_drift_invariant(Zbad, E, a, 1e-3, pen).passed is False
    with pytest.raises(ValueError):
        checks.check_drift_invariant(Z[:, :-1], E, a)


def test_drift_constant_pass_and_fail(paths):
    E, a, _ = paths
    second = 0.5 * np.mean((E - a) ** 2)
    assert checks.check_drift_constant(E, a, B=2 * second).passed
    assert checks.check_drift_constant(E, a, B=0.5 * second).passed is False


def test_energy_bounded():
    E = np.array([[0.1, 0.2], [0.05, 0.3]])
    assert checks.check_energy_bounded(E, 0.3).passed
    assert checks.check_energy_bounded(E, 0.25).passed is False


# ----------------------------------------------------------------------------- claims 3, 4
def _throughput(V, gap, R=400, sd=2.0, seed=3):
    rng = np.random.default_rng(seed)
    T_star = 32.0
    return T_star, T_star - gap[:, None] + sd * rng.standard_normal((V.size, R))


def test_gap_bound_pass_and_fail():
    V = np.logspace(-4, -1, 6)
    gap = 1e-3 / V
    T_star, thr = _throughput(V, gap)
    ok = checks.check_gap_bound(V, thr, T_star, B=1.5e-3, C=0.5e-3)
    assert ok.passed, ok.details
    assert 0.45 < ok.details["tightness_ratio_V_gap_over_B_plus_C"][0] < 0.55  # V·gap/(B+C) = 1e-3/2e-3
    bad = checks.check_gap_bound(V, thr, T_star, B=1e-4, C=0.0)  # true gap 10x the claimed bound
    assert bad.passed is False
    # a wrong T* (too large) also fails
    assert checks.check_gap_bound(V, thr, T_star + 50.0, B=1.5e-3, C=0.5e-3).passed is False


def test_queue_bound_pass_and_fail():
    rng = np.random.default_rng(4)
    V = np.logspace(-3, 0, 5)
    q = 60 * V[:, None] * (1 + 0.1 * rng.standard_normal((5, 300)))
    assert checks.check_queue_bound(V, q, B=0.01, C=0.0, T_max=40.0, T_ref=32.0, eps=0.06).passed
    assert checks.check_queue_bound(V, q, B=0.01, C=0.0, T_max=32.1, T_ref=32.0, eps=0.06).passed is False


def test_lagrangian_upper_bound_pass_and_fail():
    rng = np.random.default_rng(5)
    V = np.logspace(-3, 0, 4)
    R = 300
    en = 0.06 + 0.001 * rng.standard_normal((4, R))
    ar = np.full((4, R), 0.06)
    thr = 32.0 - 0.05 + 0.5 * rng.standard_normal((4, R))
    assert checks.check_lagrangian_upper_bound(V, thr, en, ar, 32.0, 58.0).passed
    # overspending explains throughput above T*: still within the duality bound
    over = thr + 58.0 * 0.01
    assert checks.check_lagrangian_upper_bound(V, over, en + 0.01, ar, 32.0, 58.0).passed
    # more throughput than T* without the energy to pay for it: T* is not an upper bound
    assert checks.check_lagrangian_upper_bound(V, thr + 1.0, en, ar, 32.0, 58.0).passed is False


# ----------------------------------------------------------------------------- G_L on a toy DPP
# Two fading states h ∈ {0, 1} (prob. ½ each), two actions: γ = 0 (T = 20, E = 0) and γ = 1
# (T = 30 + 10h, E = 1), budget Ē = 0.6. LP: always draft at h = 1 (energy ½), at h = 0 with
# probability 0.2: T* = 20 + ½·20 + ½·0.2·10 = 31, λ* = 10 (the price of h = 0's action, ΔT/ΔE);
# dual check D(10) = 10·0.6 + ½(max(20, 20) + max(20, 30)) = 31. B = ½ max(0.6², 0.4²) = 0.18.
TOY_T_STAR, TOY_LAMBDA, TOY_B, TOY_EBAR = 31.0, 10.0, 0.18, 0.6


def _toy_dpp(V, *, R=200, T=4000, seed=0, z0=0.0):
    """The drift-plus-penalty controller on the toy problem, vectorized over ``R`` realizations:
    per-realization time averages (throughput, energy, arrival, Lagrangian regret) and ``Z_T``.
    Realized throughput and energy carry mean-zero noise (the tables are the conditional means)."""
    rng = np.random.default_rng(seed)
    Z = np.full(R, float(z0))
    acc = {k: np.zeros(R) for k in ("thr", "en", "ar", "reg")}
    for _ in range(T):
        h = rng.random(R) < 0.5
        dT = np.where(h, 20.0, 10.0)
        g = V * dT > Z  # V·T(1) − Z·1 > V·T(0), ties to γ = 0
        acc["thr"] += 20.0 + g * dT + rng.normal(0.0, 3.0, R)
        e = g * (1.0 + rng.uniform(-0.2, 0.2, R))
        acc["en"] += e
        acc["ar"] += TOY_EBAR
        L0, L1 = 20.0, 20.0 + dT - TOY_LAMBDA
        acc["reg"] += np.maximum(L0, L1) - np.where(g, L1, L0)
        Z = np.maximum(Z + e - TOY_EBAR, 0.0)
    return {k: v / T for k, v in acc.items()}, Z


@pytest.fixture(scope="module")
def toy():
    Vs = np.array([0.3, 1.0, 3.0, 10.0])
    runs = [_toy_dpp(V, seed=i) for i, V in enumerate(Vs)]
    st = lambda k: np.stack([r[0][k] for r in runs])
    return Vs, st("thr"), st("en"), st("ar"), st("reg"), np.stack([r[1] for r in runs]), 4000


def test_lagrangian_gap_lower_bound_toy(toy):
    """G_L ≥ 0 holds for the toy DPP at the true T*, and fails when T* is computed 5% too low."""
    V, thr, en, ar, _, _, _ = toy
    good = checks.check_lagrangian_upper_bound(V, thr, en, ar, TOY_T_STAR, TOY_LAMBDA)
    assert good.passed, good.details
    assert np.all(good.details["G_L"] > -0.1)
    low = checks.check_lagrangian_upper_bound(V, thr, en, ar, 0.95 * TOY_T_STAR, TOY_LAMBDA)
    assert low.passed is False and low.details["violations"] == V.size


def test_lagrangian_gap_upper_bound_toy(toy):
    """G_L ≤ (B + C)/V + horizon term holds for the toy DPP; a T* 5% too high (G_L inflated by
    1.55 tok/s, above B/V = 0.18/V for V ≥ 0.3 once the horizon term is small) fails, and so does a
    controller that delivers 0.5 tok/s less than it should."""
    V, thr, en, ar, _, ZT, T = toy
    good = checks.check_lagrangian_gap_bound(V, thr, en, ar, ZT, T, TOY_T_STAR, TOY_LAMBDA, TOY_B, 0.0)
    assert good.passed, good.details
    high = checks.check_lagrangian_gap_bound(V, thr, en, ar, ZT, T, 1.05 * TOY_T_STAR, TOY_LAMBDA, TOY_B, 0.0)
    assert high.passed is False
    lossy = checks.check_lagrangian_gap_bound(V, thr - 0.5, en, ar, ZT, T, TOY_T_STAR, TOY_LAMBDA, TOY_B, 0.0)
    assert lossy.passed is False


def test_lagrangian_transient_by_hand():
    # [λ(Z_T − Z_0) + (Z_0² − Z_T²)/(2V)]/T with V = 2, Z_T = 3, Z_0 = 1, T = 10, λ = 5:
    # [5·2 + (1 − 9)/4]/10 = (10 − 2)/10 = 0.8
    assert checks.lagrangian_transient(2.0, 3.0, 10, 5.0, 1.0) == pytest.approx(0.8)
    # Z_0 = 0: at most λ Z_T / T, and never above V λ²/(2T) (at Z_T = Vλ: 2·25/20 = 2.5)
    z = np.linspace(0, 40, 401)
    tr = checks.lagrangian_transient(2.0, z, 10, 5.0)
    assert np.all(tr <= 5.0 * z / 10 + 1e-12) and tr.max() == pytest.approx(2.5)
    # the check's bound column is (B + C)/V plus the mean horizon term, per V
    V = np.array([1.0, 2.0])
    thr = np.full((2, 3), 30.0)
    en = ar = np.full((2, 3), 0.06)
    ZT = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    v = checks.check_lagrangian_gap_bound(V, thr, en, ar, ZT, 100, 31.0, 10.0, 0.5, np.array([0.0, 1.0]))
    expect = np.array([0.5 / 1 + (10 * 2.0 - (1 + 4 + 9) / 3 / 2) / 100, 1.5 / 2 + (10 * 2.0 - 4.0 / 4) / 100])
    np.testing.assert_allclose(v.details["bound_with_transient"], expect)
    np.testing.assert_allclose(v.details["G_L"], [1.0, 1.0])


def test_regret_consistency_toy(toy):
    """The regret estimator and the raw G_L agree at the true (T*, λ*); a T* 5% low or a wrong λ*
    (regret computed at the wrong price) fail."""
    V, thr, en, ar, reg, _, _ = toy
    raw = checks.lagrangian_gap(thr, en, ar, TOY_T_STAR, TOY_LAMBDA)
    assert np.all(reg >= 0)
    ok = checks.check_regret_consistency(V, raw, reg)
    assert ok.passed, ok.details
    assert checks.check_regret_consistency(V, checks.lagrangian_gap(thr, en, ar, 0.95 * TOY_T_STAR, TOY_LAMBDA), reg).passed is False
    assert checks.check_regret_consistency(V, checks.lagrangian_gap(thr, en, ar, TOY_T_STAR, 14.0), reg).passed is False


def test_toy_regret_falls_with_V():
    """Stationary regret of the toy DPP (warm start Z_0 = Vλ*). The toy is polyhedral (ties at λ*),
    so the regret falls faster than 1/V (measured slope ≈ −1.28 over V = 0.03..0.3, the three
    largest V) and vanishes for V ≥ 1 (Z/V never leaves the tie interval): there the check has < 3
    resolvable points and is inconclusive, never a pass."""
    V = np.array([0.003, 0.01, 0.03, 0.1, 0.3])
    reg = np.stack([_toy_dpp(v, R=100, T=1500, seed=10 + i, z0=v * TOY_LAMBDA)[0]["reg"] for i, v in enumerate(V)])
    v = checks.check_lagrangian_slope(V, reg, n_resamples=999)
    assert v.passed is True and v.statistic < -1.0, (v.statistic, v.ci)
    Vl = np.array([0.1, 0.3, 1.0, 3.0])
    reg = np.stack([_toy_dpp(v, R=100, T=1500, seed=10 + i, z0=v * TOY_LAMBDA)[0]["reg"] for i, v in enumerate(Vl)])
    assert np.all(reg[2:] == 0.0)
    assert checks.check_lagrangian_slope(Vl, reg, n_resamples=999).status == "inconclusive"


@pytest.mark.parametrize("power, expect", [(2.0, True), (1.0, True), (0.5, False), (0.0, False), (-0.5, False)])
def test_lagrangian_slope(power, expect):
    """G_L = c·V^-power with multiplicative noise (48 realizations, 6 V over 2.5 decades): 1/V and
    faster pass; 1/√V, no decay and growth fail. The fitted queue slope is reported."""
    rng = np.random.default_rng(7)
    V = np.logspace(0, 2.5, 6)
    x = (1e-3 * V ** (-power))[:, None] * rng.gamma(4.0, 0.25, size=(6, 48))
    q = (40 * V)[:, None] * (1 + 0.01 * rng.standard_normal((6, 48)))
    v = checks.check_lagrangian_slope(V, x, queue_mean=q, n_resamples=1999)
    assert v.passed is expect, (v.statistic, v.ci)
    assert v.details["queue_slope_ci_contains_1"]
    if expect:
        assert v.details["false_failure_probability"] < 1e-6  # se ≈ 0.02 ≪ margin 0.5
        assert v.ci[0] <= -power <= v.ci[1]


def test_lagrangian_slope_inconclusive():
    rng = np.random.default_rng(8)
    V = np.logspace(0, 2.5, 6)
    x = (1e-3 / V)[:, None] * rng.gamma(4.0, 0.25, size=(6, 48))
    x[2:] = 0.0  # G_L unresolvable beyond the second V: 2 points only
    v = checks.check_lagrangian_slope(V, x, n_resamples=999)
    assert v.status == "inconclusive" and v.passed is None
    # three points within half a decade: too narrow a span
    Vn = np.logspace(0, 0.5, 3)
    v = checks.check_lagrangian_slope(Vn, (1e-3 / Vn)[:, None] * rng.gamma(4.0, 0.25, size=(3, 48)), n_resamples=999)
    assert v.status == "inconclusive"


# ----------------------------------------------------------------------------- claim 5
@pytest.mark.parametrize("power, expect", [(1.5, True), (1.0, True), (0.3, False)])
def test_gap_slope(power, expect):
    V = np.logspace(-3, 0, 8)
    gap = 2.0 * (V / V[0]) ** (-power)
    T_star, thr = _throughput(V, gap, R=300, sd=0.02)
    v = checks.check_gap_slope(V, thr, T_star, n_resamples=199)
    assert v.passed is expect, (v.statistic, v.ci, v.details.get("fit_points"))
    assert v.ci[0] <= v.statistic <= v.ci[1]


def test_gap_slope_excludes_plateau_and_handles_unmeasurable_gaps():
    V = np.logspace(-3, 0, 8)
    gap = np.where(V < 1e-2, 4.0, 4.0 * (V / 1e-2) ** -1.2)  # saturated at small V, then 1/V^1.2
    T_star, thr = _throughput(V, gap, R=300, sd=0.02)
    v = checks.check_gap_slope(V, thr, T_star, n_resamples=199)
    assert v.passed is True and v.statistic < -1 and v.details["method"] == "log-log regression"
    assert min(v.details["fit_points"]) >= 3  # plateau points not fitted
    # no gap at all: nothing to fit
    T_star, thr0 = _throughput(V, np.zeros(8), R=300, sd=0.02)
    assert checks.check_gap_slope(V, thr0, T_star, n_resamples=199).status == "inconclusive"
    # a gap that does not decay over three decades of V fails
    T_star, thr_flat = _throughput(V, np.full(8, 4.0), R=300, sd=0.02)
    assert checks.check_gap_slope(V, thr_flat, T_star, n_resamples=199).passed is False
    # staircase collapse in the queue-floor regime (outside fit_mask), then below resolution:
    # V·gap non-increasing in the fitted range -> pass
    stair = np.array([4.0, 4.0, 0.25, 0.25, 0.02, 0.0, 0.0, 0.0])
    asymptotic = np.arange(8) >= 4
    T_star, thr_s = _throughput(V, stair, R=300, sd=0.02)
    vs = checks.check_gap_slope(V, thr_s, T_star, fit_mask=asymptotic, n_resamples=199)
    assert vs.passed is True and vs.details["method"].startswith("V·gap"), vs.details
    # ... but a gap that comes back at larger V (V·gap increasing) fails
    back = np.array([4.0, 4.0, 0.25, 0.25, 0.02, 0.0, 0.3, 0.0])
    T_star, thr_b = _throughput(V, back, R=300, sd=0.02)
    vb = checks.check_gap_slope(V, thr_b, T_star, fit_mask=asymptotic, n_resamples=199)
    assert vb.passed is False and vb.details["method"].startswith("V·gap")


@pytest.mark.parametrize("power, expect", [(1.0, True), (0.7, True), (2.0, False)])
def test_queue_slope(power, expect):
    rng = np.random.default_rng(6)
    V = np.logspace(-3, 0, 6)
    q = (V[:, None] ** power) * (1 + 0.05 * rng.standard_normal((6, 200)))
    v = checks.check_queue_slope(V, q, n_resamples=199)
    assert v.passed is expect
    if power == 1.0:
        assert v.details["ci_contains_1"]


# ----------------------------------------------------------------------------- claims 6, 7
def test_closed_form_pass_and_fail():
    rng = np.random.default_rng(8)
    x = rng.exponential(2.0, size=(3, 20000))
    assert checks.check_closed_form("exp means", [2.0, 2.0, 2.0], x).passed
    assert checks.check_closed_form("exp means", [2.0, 2.1, 2.0], x).passed is False
    # deterministic samples: equality up to rounding
    ones = np.ones((1, 1000))
    assert checks.check_closed_form("N(0) = 1", [1.0], ones).passed
    assert checks.check_closed_form("N(0) = 1", [1.0 + 1e-9], ones).passed is False


def test_optimum_agreement():
    assert checks.check_optimum_agreement(32.0, 32.0 + 1e-9, rel_tol=1e-8).passed
    assert checks.check_optimum_agreement(32.0, 32.1, rel_tol=1e-8).passed is False


def test_lossless_pass_and_fail():
    rng = np.random.default_rng(9)
    p = np.array([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    q = np.array([0.3, 0.3, 0.2, 0.1, 0.1, 0.0])
    good = np.bincount(rng.choice(6, size=20000, p=p), minlength=6)
    bad = np.bincount(rng.choice(6, size=20000, p=q), minlength=6)
    assert checks.check_lossless(good, p).passed
    assert checks.check_lossless(bad, p).passed is False
    leak = good.copy()
    leak[5] = 1  # a token the target never emits
    assert checks.check_lossless(leak, p).passed is False


def test_single_compile():
    assert checks.check_single_compile(1, 4, 12).passed
    assert checks.check_single_compile(0, 4, 12).passed  # reused an already compiled program
    assert checks.check_single_compile(3, 4, 12).passed is False
