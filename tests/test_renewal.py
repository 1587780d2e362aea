"""The time-average (renewal) objective, docs/model.md §11: the optimum two ways against each other and
against brute force, the exact renewal means, the ratio rule against an independent numpy
implementation, the queue update, and that the per-round default is untouched."""

import itertools
import math

import jax
import numpy as np
import pytest

from gelato_jax import Scenario, rollout, sample_exogenous, simulate
from gelato_jax import reference as ref
from gelato_jax import renewal
from gelato_jax.policies import Gelato, StaticSD
from theory import renewal as th

TA = Scenario(objective="time_average")
# a user scenario: the paper's 140 ms round trip, half the bandwidth, a tighter power budget
USER = Scenario(objective="time_average", delta=0.14, W=0.5e6, W_dl=0.5e6, P_bar=0.3)


# ----------------------------------------------------------------------------- scenario fields
@pytest.mark.parametrize("field,value,needle", [
    ("P_bar", 0.0, "Scenario.P_bar must be a finite number in (0, inf)"),
    ("P_bar", -1.0, "Scenario.P_bar must be a finite number in (0, inf)"),
    ("P_bar", math.nan, "Scenario.P_bar"),
    ("objective", "tokens", "Scenario.objective must be one of ['per_round', 'time_average']"),
])
def test_scenario_fields_validated(field, value, needle):
    with pytest.raises(ValueError) as err:
        Scenario(**{field: value})
    assert needle in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.slow
def test_per_round_results_do_not_depend_on_P_bar():
    """Default objective: P_bar is not read (every existing result stays bit-identical)."""
    a = simulate(Scenario(), Gelato(V=1.0), seed=3, realizations=4, rounds=60)
    b = simulate(Scenario(P_bar=0.123), Gelato(V=1.0), seed=3, realizations=4, rounds=60)
    for k, v in a.as_dict().items():
        np.testing.assert_array_equal(v, b.as_dict()[k], err_msg=k)


# ----------------------------------------------------------------------------- the optimum
@pytest.mark.parametrize("scen", [TA, USER], ids=["defaults", "user"])
def test_lp_and_dinkelbach_agree(scen):
    o = renewal.time_average_optimum(scen, Gelato(), quantiles=512)
    assert o.rel_diff <= 1e-6, o.summary()
    assert abs(o.lambda_star - o.lambda_star_lp) <= 1e-6 * max(1.0, o.lambda_star)
    assert o.power <= o.P_bar * (1 + 1e-8)
    # the budget binds at these settings (λ* > 0), so the optimal power equals P̄
    assert o.lambda_star > 0 and abs(o.power - o.P_bar) <= 1e-7 * o.P_bar
    # T* lies between plain edge decoding (γ = 0 always, 0 W) and the unconstrained optimum
    tab = o.tables
    t0 = tab.weights @ tab.tokens[:, 0] / (tab.weights @ tab.latency[:, 0])
    free = renewal.dinkelbach(tab, 1e9)["T_star"]
    assert t0 < o.T_star < free


def _brute_force(tab, P_bar):
    """Max ratio over deterministic policies and two-policy mixtures on the power boundary (the
    vertices of the feasible set of the linear-fractional program)."""
    w, N, D, E = tab.weights, tab.tokens, tab.latency, tab.energy
    n, G1 = N.shape
    pols = [np.array(p) for p in itertools.product(range(G1), repeat=n)]
    r = np.arange(n)
    stats = [(w @ N[r, p], w @ D[r, p], w @ (E[r, p] - P_bar * D[r, p])) for p in pols]
    best = max(sn / sd for sn, sd, sy in stats if sy <= 0)
    for (na, da, ya), (nb, db, yb) in itertools.combinations(stats, 2):
        if (ya > 0) != (yb > 0):
            q = ya / (ya - yb)
            best = max(best, ((1 - q) * na + q * nb) / ((1 - q) * da + q * db))
    return best


def test_optimum_matches_brute_force_on_a_small_table():
    rng = np.random.default_rng(7)
    n, G1 = 3, 3
    N = np.cumsum(rng.uniform(0.5, 1.0, (1, G1)), axis=1).repeat(n, 0)
    D = 0.05 + rng.uniform(0.0, 0.04, (n, G1)) * np.arange(G1)
    E = rng.uniform(0.01, 0.05, (n, G1)) * np.arange(G1)
    tab = renewal.RenewalTables(np.arange(n) + 1.0, np.array([0.2, 0.5, 0.3]), np.zeros(n, bool), N, D, E)
    P_bar = 0.3
    want = _brute_force(tab, P_bar)
    lp = renewal.charnes_cooper_lp(tab, P_bar)
    dk = renewal.dinkelbach(tab, P_bar)
    assert abs(lp["T_star"] - want) <= 1e-9 * want and abs(dk["T_star"] - want) <= 1e-12 * want


def test_mean_proxy_is_the_exact_renewal_mean_without_exit():
    """exit='none': E[N|γ] = Σ_{j≤γ} ᾱ^j (i.i.d. acceptance) and P = L = γ, so the mean proxy is
    the exact renewal mean. Check against the sample of ``build_table``: |difference| ≤ 5 standard
    errors of the sample mean (normal approximation; false-failure rate ≈ 6e-7 per budget)."""
    from gelato_jax import exact_proxy

    scen = Scenario(objective="time_average")
    M = 4096
    with jax.enable_x64(True):
        tab = jax.jit(lambda s: renewal.build_table(s, payload="topp", exit="none", H_th=1.5, Theta_th=1.0,
                                                    samples=M, chunk=M))(scen)
        H = exact_proxy.table_entropies(scen, M, np.float64, 0)
        _, _, B, pi = jax.vmap(lambda e: exact_proxy.round_laws(scen, e, payload="topp", exit="none", H_th=1.5,
                                                                Theta_th=1.0))(H)
    n_per = np.asarray((pi * (np.arange(scen.gamma_max + 1) + 1.0)).sum(-1))  # (M, G+1)
    se = n_per.std(axis=0, ddof=1) / math.sqrt(M)
    g = Gelato(exit="none")
    with jax.enable_x64(True):
        aux = g.precompute(Scenario())
        alpha = float(aux.alpha_bar)
    n_hat = np.array([sum(alpha**j for j in range(k + 1)) for k in range(scen.gamma_max + 1)])
    assert np.all(np.abs(np.asarray(tab.mean_tokens) - n_hat) <= 5 * se + 1e-12)
    np.testing.assert_array_equal(np.asarray(tab.mean_passes), np.arange(scen.gamma_max + 1))
    np.testing.assert_array_equal(np.asarray(tab.mean_sent), np.arange(scen.gamma_max + 1))
    se_b = np.asarray(B).std(axis=0, ddof=1) / math.sqrt(M)
    b_bar = float(aux.topp_bits)
    assert np.all(np.abs(np.asarray(tab.mean_bits) - np.arange(scen.gamma_max + 1) * b_bar) <= 5 * se_b + 1e-9)


# ----------------------------------------------------------------------------- the ratio rule
def _numpy_theta(V, Z, P_bar, N, D, E, allowed, w):
    """Root of Φ(θ) = Σ w max_γ [V N − Z(E − P̄D) − θD] by plain bisection (independent of the
    Dinkelbach iteration in ``renewal.ratio_theta``)."""
    num = V * N - Z * (E - P_bar * D)

    def phi(t):
        return float(w @ np.where(allowed, num - t * D, -np.inf).max(axis=1))

    lo, hi = float(np.min(num / D)), float(np.max(num / D))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if phi(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@pytest.fixture(scope="module")
def user_exo():
    with jax.enable_x64(True):
        return sample_exogenous(USER, seed=1, realizations=2, rounds=60, dtype=np.float64)


@pytest.fixture(scope="module")
def user_aux():
    """``precompute`` of the time-average Gelato on USER (does not depend on V or the ratio variant)."""
    with jax.enable_x64(True):
        return Gelato(ratio_nodes=32).precompute(USER)


@pytest.fixture(scope="module")
def known_rollout(user_exo):
    with jax.enable_x64(True):
        return rollout(USER, Gelato(V=2.0, ratio="known", ratio_nodes=32), user_exo)


@pytest.mark.parametrize("ratio", ["known", "learn"])
def test_ratio_rule_budgets_match_numpy(ratio, user_exo, known_rollout, user_aux):
    """Every round of a float64 rollout plays argmax_γ [V N̂ − Z(Ê − P̄D̂) − θ D̂] at its own queue and
    rate, with θ(Z) recomputed in numpy (bisection on the same fading nodes) or V·ΣN/ΣD of the
    rounds before; and the queue follows Z_{t+1} = max(Z + E − P̄D, 0)."""
    scen, exo = USER, user_exo
    pol = Gelato(V=2.0, ratio=ratio, ratio_nodes=32)
    with jax.enable_x64(True):
        tr = known_rollout if ratio == "known" else rollout(scen, pol, exo)
        aux = user_aux
        Nn, Dn, En, outn = (np.asarray(x) for x in aux.node_tables)
    allowed = np.ones_like(Nn, bool)
    allowed[outn, 1:] = False
    w = np.asarray(aux.h_weights)
    h = np.maximum(np.asarray(exo.channel_gain), float(scen.h_min))
    Z = np.asarray(tr.queue)
    P_bar, V = float(scen.P_bar), float(pol.V)
    # the proxy at each round's rate, in numpy from docs/model.md §3/§5 (mean proxy, no rejection flag use
    # since rounds are i.i.d. at these settings)
    with jax.enable_x64(True):
        N, D, E, out = (np.asarray(x) for x in renewal.node_costs(scen, pol, aux, (), h.reshape(-1)))
    R, T = h.shape
    N, D, E, out = N.reshape(R, T, -1), D.reshape(R, T, -1), E.reshape(R, T, -1), out.reshape(R, T)
    mismatches = 0
    for r in range(R):
        sn = sd = 0.0
        for t in range(T):
            if ratio == "known":
                theta = _numpy_theta(V, Z[r, t], P_bar, Nn, Dn, En, allowed, w)
            else:
                theta = V * sn / sd if sd > 0 else 0.0
            u = V * N[r, t] - Z[r, t] * (E[r, t] - P_bar * D[r, t]) - theta * D[r, t]
            if out[r, t]:
                u[1:] = -np.inf
            top = np.sort(u)[-2:]
            if top[1] - top[0] > 1e-9 * (abs(top[1]) + 1e-300):  # skip numerical near-ties
                mismatches += int(np.argmax(u) != int(tr.budget[r, t]))
            sn += float(tr.tokens[r, t])
            sd += float(tr.latency[r, t])
            z_next = max(Z[r, t] + float(tr.energy[r, t]) - P_bar * float(tr.latency[r, t]), 0.0)
            if t + 1 < T:
                assert abs(Z[r, t + 1] - z_next) <= 1e-12 * max(1.0, z_next)
    assert mismatches == 0
    assert len(set(np.asarray(tr.budget).ravel().tolist())) > 1  # the rule is not trivially constant


def test_ratio_theta_is_the_root_of_phi(user_aux):
    with jax.enable_x64(True):
        aux = user_aux
        N, D, E, out = aux.node_tables
        for Z in (0.0, 10.0, 80.0):
            th_ = float(renewal.ratio_theta(5.0, Z, float(USER.P_bar), N, D, E, out, aux.h_weights))
            want = _numpy_theta(5.0, Z, float(USER.P_bar), *(np.asarray(x) for x in (N, D, E)),
                                np.where(np.asarray(out)[:, None] & (np.arange(N.shape[1]) > 0), False, True),
                                np.asarray(aux.h_weights))
            assert abs(th_ - want) <= 1e-9 * abs(want), (Z, th_, want)


def test_power_on_every_path_and_reference_queue(user_exo, known_rollout):
    """Pathwise: ΣE/ΣD ≤ P̄ + Z_T/ΣD (telescoping, exact up to rounding); and the numpy reference's
    queue equals the JAX rollout's for a static policy under the time-average objective."""
    scen, exo, tr = USER, user_exo, known_rollout
    with jax.enable_x64(True):
        st = rollout(scen, StaticSD(gamma=3, payload="topp"), exo)
    E, D, Z = (np.asarray(x) for x in (tr.energy, tr.latency, tr.queue))
    z_T = np.maximum(Z[:, -1] + E[:, -1] - float(scen.P_bar) * D[:, -1], 0.0)
    for r in range(E.shape[0]):
        bound = th.overdraft_bound(D[r], scen.P_bar, z_T[r])
        assert E[r].sum() / D[r].sum() <= bound * (1 + 1e-12)
    want = ref.rollout(scen, StaticSD(gamma=3, payload="topp"), tuple(np.asarray(x) for x in exo))
    np.testing.assert_allclose(np.asarray(st.queue), want["queue"], rtol=1e-11, atol=1e-15)


def test_gelato_refuses_marginal_exit_under_time_average():
    with pytest.raises(ValueError, match="exit='marginal'"):
        Gelato(exit="marginal").validate(TA)
    with pytest.raises(ValueError, match="Gelato.ratio must be one of"):
        Gelato(ratio="guess")


# ----------------------------------------------------------------------------- theory
def test_theory_constants_and_second_order_algebra():
    import sympy as sp

    assert sp.simplify(th.V_GL_expr - th.sigma2 / (4 * th.ED)) == 0
    assert th.D_min(TA) == pytest.approx(0.045)
    # B bounds ½E[y²] of every fixed budget: here γ = 3 everywhere (outage: 0) under exit none/full
    scen = Scenario(objective="time_average", V_vocab=64.0)
    pol = Gelato(exit="none", payload="full")
    h, w = th._h_grid(scen)
    y2 = th._vertex_y2(scen, pol, h)
    assert 0.5 * float(w @ y2[:, 3]) <= th.drift_constant(scen, pol)
    assert th.gap_bound(1.0, 0.0, 2.0, 0.5) == pytest.approx(1.0)
    assert th.queue_bound(1.0, 0.0, 11, 0.5, 1.0, 2.0) == pytest.approx(1.0)
