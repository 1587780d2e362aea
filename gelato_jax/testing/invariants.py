r"""Invariants every GELATO controller must keep, checked by hypothesis on any ``Policy``.

``check_policy(policy)`` runs each invariant as a hypothesis property over generated scenarios,
observations and exogenous draws (``gelato_jax.testing.strategies``) and returns one
``InvariantResult`` per invariant: pass, FAIL with hypothesis's *shrunk* counterexample written
out as a readable scenario and round, or skip (with the reason). ``policy`` is a ``Policy``
instance, a ``Policy`` subclass (built with its defaults) or a factory ``scenario -> Policy``.

Invariants (MODEL.md §1, §5, §6, §8):

=====================  ==========================================================================
``budget_range``       the policy's own budget (before the round clips it) is an integer in
                       ``[0, γ_max]``; the round plays ``0`` in outage
``round_outputs``      ``0 ≤ sent ≤ budget``, ``passes ∈ {sent, sent + 1}``, ``1 ≤ tokens ≤ sent + 1``
                       (verified rounds), ``Z ≥ 0``
``finite``             every output is finite: the raw budget, ``sent``/``passes``, the policy
                       state after ``update_state``, every per-round quantity — also at queues
                       up to 1e12 J drawn directly
``energy_path``        §8.2 on every sample path: ``Σ E_t ≤ Σ a_t + Z_T`` (and the queue update
                       ``Z_{t+1} = max(Z_t + E_t − a_t, 0)``)
``drift``              §8 per-round drift: ``½Z²_{t+1} − ½Z²_t ≤ ½(E_t − a_t)² + Z_t(E_t − a_t)``
``purity``             same inputs, same outputs: ``choose_budget``, ``draft``, ``update_state``
                       called twice eagerly on the same arguments return identical values (hidden
                       Python state — a global, a counter, ``numpy.random`` — changes them)
``chunking``           ``simulate`` gives identical results for any chunk size, ``rollout`` is
                       equivariant to the order of realizations, and (with ≥ 2 devices) a sharded
                       ``sweep`` equals the one-device run
``no_retrace``         changing the policy's numeric field values does not recompile
                       (``chex.assert_max_traces``): float knobs must be pytree leaves
=====================  ==========================================================================

Declared properties, checked when the policy declares them in a class attribute
``declared_properties`` (or ``check_policy(declared=...)``, ``gelato check --declare``):

* ``monotone_in_queue``: for a fixed round, a larger ``Z`` never picks a larger budget;
* ``per_slot_optimal``: the budget is the exact maximiser of ``V·T̂(γ) − Z·Ê(γ)`` (smallest γ on
  ties, 0 in outage) against a float64 brute force; needs a ``V`` field and a method
  ``proxy_costs(scenario, aux, state, obs)`` returning per-budget ``throughput`` and ``energy``
  (as ``Gelato``);
* ``greedy_limit``: as ``V → ∞`` (``V`` = the dtype's largest value / 16) the budget maximises
  ``T̂`` (with ``proxy_costs``) or, without it, equals the budget at ``Z = 0``; needs ``V``.

Tolerances are rounding tolerances in the simulation dtype (``64 ε`` times the magnitude of the
terms); these are deterministic checks, so the false-failure rate is zero up to rounding. Every
check computes its references in float64 numpy.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Callable, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.reporting import with_reporter

from .. import engine
from ..pytree import field_names, static_fields
from ..model import initial_carry, round_decision, round_step
from ..policies.base import Policy, RoundOutcome
from ..scenario import Scenario
from ..simulator import Exogenous, simulate
from . import strategies as gst

__all__ = [
    "INVARIANTS",
    "DECLARABLE",
    "DEFAULT_STATICS",
    "InvariantResult",
    "CheckReport",
    "Violation",
    "check_policy",
    "describe_scenario",
]

#: static scenario fields drawn by ``check_policy`` (each value compiles the kernels once)
DEFAULT_STATICS: dict[str, tuple] = {"gamma_max": (4, 10)}
# every example is one rollout of _K realizations × _T rounds from drawn starts (one shape: the
# kernel compiles once per policy class and static combination)
_K, _T = 8, 48
_ROUND_TOL = 64.0  # rounding tolerance in units of eps × magnitude


class Violation(AssertionError):
    """An invariant failed on one example; ``where`` is the readable counterexample."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.message = message
        self.where = where


@dataclasses.dataclass
class InvariantResult:
    """The outcome of one invariant: ``status`` is ``"pass"``, ``"FAIL"`` or ``"skip"``."""

    name: str
    status: str
    claim: str
    message: str = ""
    counterexample: str = ""
    examples: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def line(self) -> str:
        head = f"{self.status:<4}  {self.name:<18} {self.claim}"
        if self.status == "pass":
            note = f"; {self.message}" if self.message else ""
            return f"{head}  ({self.examples} examples, {self.seconds:.1f} s{note})"
        if self.status == "skip":
            return f"{head}  (skipped: {self.message})"
        return f"{head}\n        {self.message}" + (f"\n        counterexample: {self.counterexample}" if self.counterexample else "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CheckReport:
    """All invariant results of one ``check_policy`` run; ``ok`` is False when one FAILs."""

    policy: str
    results: list[InvariantResult]
    dtype: str
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def __getitem__(self, name: str) -> InvariantResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def format(self) -> str:
        n_fail = sum(r.status == "FAIL" for r in self.results)
        lines = [r.line() for r in self.results]
        lines.append(f"{len(self.results) - n_fail} of {len(self.results)} invariants hold or are skipped, "
                     f"{n_fail} FAIL ({self.seconds:.1f} s, {self.dtype})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "ok": self.ok, "dtype": self.dtype, "seconds": self.seconds,
                "results": [r.to_dict() for r in self.results]}


# ----------------------------------------------------------------------------- descriptions
def _fmt(x: Any) -> str:
    try:
        arr = np.asarray(x)
    except Exception:  # pragma: no cover - exotic leaves
        return repr(x)
    if arr.ndim == 0 and arr.dtype.kind in "fc":
        return f"{float(arr):.6g}"
    if arr.ndim == 0:
        return repr(arr.item())
    return np.array2string(arr, precision=4, separator=", ", max_line_width=10_000)


def describe_scenario(scenario: Scenario) -> str:
    """``Scenario(...)`` with the fields that differ from the defaults (the rest are MODEL §9's)."""
    default = Scenario()
    parts = []
    for name in field_names(scenario):
        v, d = getattr(scenario, name), getattr(default, name)
        try:
            same = bool(np.all(np.asarray(v) == np.asarray(d))) if v is not None and d is not None else v is d
        except Exception:  # pragma: no cover
            same = False
        if not same:
            parts.append(f"{name}={v!r}" if isinstance(v, str) else f"{name}={_fmt(v)}")
    return "Scenario(" + ", ".join(parts) + ")"


def _describe_policy(policy: Policy) -> str:
    names = field_names(type(policy))
    return f"{type(policy).__name__}(" + ", ".join(f"{n}={_fmt(getattr(policy, n)) if not isinstance(getattr(policy, n), str) else repr(getattr(policy, n))}" for n in names) + ")"


# ----------------------------------------------------------------------------- the policy
def _factory(policy) -> tuple[Callable[[Scenario], Policy], str]:
    """``(scenario -> Policy, name)`` from an instance, a class or a factory."""
    if isinstance(policy, Policy):
        return (lambda s: policy), _describe_policy(policy)
    if isinstance(policy, type) and issubclass(policy, Policy):
        inst = policy()
        return (lambda s: inst), _describe_policy(inst)
    if callable(policy):
        return policy, getattr(policy, "__name__", repr(policy))
    raise TypeError(f"policy must be a gelato_jax.policies.Policy instance, subclass or factory, got {policy!r}")


def _check_pytree(policy: Policy) -> None:
    """Every ``Policy`` subclass is an ``equinox.Module`` (a pytree); a factory must return one."""
    if not isinstance(policy, Policy):
        raise ValueError(f"the factory returned {type(policy).__name__}, not a gelato_jax.policies.Policy")


def _build(make, scenario: Scenario):
    """``(scenario, policy, dtype)`` prepared for a run; rejects (``assume``) a scenario the
    policy's ``validate`` refuses."""
    pol = make(scenario)
    _check_pytree(pol)
    try:
        pol.validate(scenario)
        return engine.prepare(scenario, pol, None)
    except ValueError:  # refused by the policy, or not representable in the dtype
        assume(False)


def _declared(policy_or_cls) -> set[str]:
    return set(getattr(policy_or_cls, "declared_properties", ()) or ())


# ----------------------------------------------------------------------------- the kernel
def _raw_budget(policy, scenario, aux, state, obs, dtype):
    raw = jnp.asarray(policy.choose_budget(scenario, aux, state, obs))
    if raw.shape != ():
        raise ValueError(f"{type(policy).__name__}.choose_budget must return a scalar, got shape {raw.shape}")
    return raw.astype(dtype)


def _tree_finite(tree) -> Any:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if hasattr(x, "dtype") and jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _record_rollout(scenario, policy, exo, t0, z0, rej0):
    """``rollout`` from drawn starts ``(t0, Z_0, rejected_0)`` per realization, recording the
    policy's raw budget, the finiteness of its state and the outage flag of every round.
    Returns ``((rows, raw, state_ok, outage), Z_T, aux)``: one compiled program per policy class
    and static scenario serves every invariant."""
    aux = policy.precompute(scenario)
    dtype = exo.channel_gain.dtype

    def one(exo_r, t, z, rej):
        carry0 = initial_carry(scenario, policy, aux, dtype)._replace(t=t, queue=z, rejected=rej)

        def step(carry, x):
            obs, _ = round_decision(scenario, policy, aux, carry, x[0])
            raw = _raw_budget(policy, scenario, aux, carry.policy_state, obs, dtype)
            carry1, row = round_step(scenario, policy, aux, carry, x)
            return carry1, (row, raw, _tree_finite(carry1.policy_state), obs.outage)

        last, out = jax.lax.scan(step, carry0, tuple(exo_r))
        return out, last.queue

    out, z_T = jax.vmap(one)(exo, t0, z0, rej0)
    return out, z_T, aux


_kernel = jax.jit(_record_rollout)


@jax.jit
def _proxy_kernel(scenario, policy, t, queue, h, rejected):
    """Budget and the policy's own proxy ``(T̂, Ê)`` per budget at each of ``K`` observations."""
    aux = policy.precompute(scenario)
    dtype = queue.dtype

    def one(t, z, h, rej):
        carry = initial_carry(scenario, policy, aux, dtype)._replace(t=t, queue=z, rejected=rej)
        obs, budget = round_decision(scenario, policy, aux, carry, h)
        pc = policy.proxy_costs(scenario, aux, carry.policy_state, obs)
        return budget, jnp.asarray(pc.throughput, dtype), jnp.asarray(pc.energy, dtype), obs.outage

    return jax.vmap(one)(t, queue, h, rejected)


# ----------------------------------------------------------------------------- draws
_ROUND_INDEX, _BOOL = st.integers(0, 10_000), st.booleans()


@st.composite
def _starts(draw, scenario: Scenario, *, sorted_queue: bool = False, queue_hi: float = 1e12):
    """Exogenous draws of ``_K`` realizations × ``_T`` rounds and each realization's start
    ``(t0, Z_0, rejected_0)``, with ``Z_0`` from ``strategies.queues`` (0, the working range and
    large queues). ``sorted_queue``: ascending ``Z_0`` and round 0 identical in every realization,
    so round 0 compares budgets at different queues and nothing else."""
    exo = draw(gst.exogenous(R=_K, T=_T, gamma_max=scenario.gamma_max))
    zs = gst.queues(queue_hi)
    z0 = np.array([draw(zs) for _ in range(_K)])
    if sorted_queue:
        z0 = np.sort(z0)
        exo = Exogenous(*(np.concatenate([np.broadcast_to(x[:1, :1], (_K, 1) + x.shape[2:]), x[:, 1:]], axis=1)
                          for x in (np.asarray(v) for v in exo)))
        t0 = np.full(_K, draw(_ROUND_INDEX), np.int32)
        rej0 = np.full(_K, draw(_BOOL))
    else:
        t0 = np.array([draw(_ROUND_INDEX) for _ in range(_K)], np.int32)
        rej0 = np.array([draw(_BOOL) for _ in range(_K)])
    return exo, t0, z0, rej0


# ----------------------------------------------------------------------------- array checks
def _eps(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


def _flat_first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(bad).reshape(-1))[0])


def _check_bounds(scenario, rows, raw, outage, where) -> None:
    """``budget_range``: the raw budget is an integer in ``[0, γ_max]``; the round plays 0 in outage."""
    g = scenario.gamma_max
    raw = np.asarray(raw, np.float64).reshape(-1)
    b = np.asarray(rows.budget).reshape(-1)
    out = np.asarray(outage).reshape(-1)
    fin = np.isfinite(raw)  # non-finite budgets are the business of ``finite``
    bad = fin & ((raw < 0) | (raw > g) | (raw != np.round(raw)))
    if np.any(bad):
        i = _flat_first(bad)
        raise Violation(f"choose_budget returned {raw[i]:g}, not an integer in [0, gamma_max={g}]", where(i))
    bad = out & (b != 0)
    if np.any(bad):
        i = _flat_first(bad)
        raise Violation(f"the round played budget {b[i]} in outage (must be 0)", where(i))


def _check_outputs(rows, where) -> None:
    b, L, P, N = (np.asarray(x).reshape(-1) for x in (rows.budget, rows.sent, rows.passes, rows.tokens))
    unv = np.broadcast_to(np.asarray(rows.unverified), np.shape(rows.budget)).reshape(-1)
    Z = np.asarray(rows.queue, np.float64).reshape(-1)
    L_eff = np.where(unv > 0, unv, L)  # a skipped verification keeps its drafts on the device
    checks = [
        ((L_eff < 0) | (L_eff > b), lambda i: f"sent={L_eff[i]} is outside [0, budget={b[i]}]"),
        ((P != L_eff) & (P != L_eff + 1), lambda i: f"passes={P[i]} is not sent={L_eff[i]} or sent + 1"),
        ((unv == 0) & ((N < 1) | (N > L + 1)), lambda i: f"tokens={N[i]} is outside [1, sent + 1 = {L[i] + 1}]"),
        ((unv > 0) & (N != unv), lambda i: f"tokens={N[i]} differ from the {unv[i]} unverified drafts kept"),
        (~(Z >= 0), lambda i: f"queue Z={Z[i]:g} is not >= 0"),
    ]
    for bad, msg in checks:
        if np.any(bad):
            i = _flat_first(bad)
            raise Violation(msg(i), where(i))


def _check_finite(rows, raw, state_ok, where) -> None:
    raw = np.asarray(raw, np.float64).reshape(-1)
    if not np.all(np.isfinite(raw)):
        i = _flat_first(~np.isfinite(raw))
        raise Violation(f"choose_budget returned {raw[i]}", where(i))
    st_ok = np.asarray(state_ok).reshape(-1)
    if not np.all(st_ok):
        raise Violation("update_state returned a non-finite policy state", where(_flat_first(~st_ok)))
    for name in rows._fields:
        x = np.asarray(getattr(rows, name))
        if x.dtype.kind not in "fc":
            continue
        x = np.broadcast_to(x, np.shape(rows.budget)).reshape(-1)
        if not np.all(np.isfinite(x)):
            i = _flat_first(~np.isfinite(x))
            raise Violation(f"round output {name} = {x[i]}", where(i))


def _check_energy_path(Z, E, a, Z_T, dtype, where) -> None:
    """§8.2: ``Z_{t+1} = max(Z_t + E_t − a_t, 0)`` and ``Σ E_t − Σ a_t ≤ Z_T − Z_0`` per path."""
    Z, E, a, Z_T = (np.asarray(x, np.float64) for x in (Z, E, a, Z_T))
    eps = _eps(dtype)
    fin = np.isfinite(E).all(1) & np.isfinite(a).all(1) & np.isfinite(Z_T) & np.isfinite(Z).all(1)
    if not np.all(fin):
        raise Violation("non-finite energy, arrival or queue on this path (see 'finite')", where.path(_flat_first(~fin)))
    nxt = np.concatenate([Z[:, 1:], Z_T[:, None]], axis=1)
    want = np.maximum(Z + E - a, 0.0)
    tol = _ROUND_TOL * eps * (np.abs(Z) + np.abs(E) + np.abs(a) + 1e-300)
    bad = np.abs(nxt - want) > tol
    if np.any(bad):
        i = _flat_first(bad)
        raise Violation(f"queue update Z_(t+1)={nxt.reshape(-1)[i]:.17g} != max(Z_t + E_t - a_t, 0)={want.reshape(-1)[i]:.17g}", where(i))
    T = E.shape[1]
    excess = E.sum(1) - a.sum(1) - (Z_T - Z[:, 0])
    tol = _ROUND_TOL * eps * T * (np.abs(E).sum(1) + np.abs(a).sum(1) + np.abs(Z_T) + np.abs(Z[:, 0]) + 1e-300)
    bad = excess > tol
    if np.any(bad):
        r = _flat_first(bad)
        raise Violation(f"sum E_t - sum a_t - (Z_T - Z_0) = {excess[r]:g} > 0 (tolerance {tol[r]:g})", where.path(r))


def _check_drift(Z, E, a, Z_T, dtype, where) -> None:
    """§8: ``½Z²_{t+1} − ½Z²_t ≤ ½(E_t − a_t)² + Z_t(E_t − a_t)`` on every round."""
    Z, E, a, Z_T = (np.asarray(x, np.float64) for x in (Z, E, a, Z_T))
    fin = np.isfinite(Z) & np.isfinite(E) & np.isfinite(a)
    if not np.all(fin):
        raise Violation("non-finite queue, energy or arrival (see 'finite')", where(_flat_first(~fin)))
    z1 = np.concatenate([Z[:, 1:], Z_T[:, None]], axis=1)
    d = E - a
    excess = 0.5 * z1**2 - 0.5 * Z**2 - (0.5 * d**2 + Z * d)
    tol = _ROUND_TOL * _eps(dtype) * (z1**2 + Z**2 + d**2 + np.abs(Z * d) + 1e-300)
    bad = excess > tol
    if np.any(bad):
        i = _flat_first(bad)
        raise Violation(f"½Z²_(t+1) − ½Z²_t exceeds ½(E−a)² + Z(E−a) by {excess.reshape(-1)[i]:g}", where(i))


def _near_argmax(u: np.ndarray, allowed: np.ndarray, tol_scale: float):
    """Budgets within rounding of the maximum of ``u`` over ``allowed``, and the smallest of them."""
    u = np.where(allowed, u, -np.inf)
    best = np.max(u)
    scale = np.max(np.abs(np.where(allowed & np.isfinite(u), u, 0.0))) + 1e-300
    near = u >= best - tol_scale * scale
    return near, int(np.flatnonzero(near)[0])


def _same(a, b) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=np.asarray(x).dtype.kind in "fc")
               for x, y in zip(la, lb))


def _fmt_tree(x) -> str:
    leaves = jax.tree.leaves(x)
    return ", ".join(_fmt(v) for v in leaves) if leaves else "()"


# ----------------------------------------------------------------------------- the runner
class _Skip(Exception):
    pass


class _Example:
    """One drawn example run through the kernel, with its readable description."""

    def __init__(self, run, scen: Scenario, draws, policy=None):
        exo, t0, z0, rej0 = draws
        self.scen = scen
        self.s, self.p, self.dtype = _build(run.make, scen) if policy is None else engine.prepare(scen, policy, None)
        run.context = f"{describe_scenario(scen)}; policy {_describe_policy(self.p)}"
        d = self.dtype
        self.exo = Exogenous(jnp.maximum(jnp.asarray(exo.channel_gain, d), self.s.h_min), *(jnp.asarray(x, d) for x in exo[1:]))
        self.t0, self.z0, self.rej0 = jnp.asarray(t0, jnp.int32), jnp.asarray(z0, d), jnp.asarray(rej0)
        (rows, raw, state_ok, outage), z_T, aux = _kernel(self.s, self.p, self.exo, self.t0, self.z0, self.rej0)
        self.rows = jax.tree.map(np.asarray, rows)
        self.raw, self.state_ok, self.outage = np.asarray(raw), np.asarray(state_ok), np.asarray(outage)
        self.z_T, self.aux = np.asarray(z_T), aux

    def where(self, i: int) -> str:
        """The readable counterexample at flat index ``i`` over (realization, round)."""
        r, t = divmod(int(i), self.rows.budget.shape[1])
        rows = self.rows
        start = f"started at t={int(self.t0[r])}, Z_0={_fmt(self.z0[r])} J, after_reject={bool(self.rej0[r])}"
        return (f"{describe_scenario(self.scen)}; realization {r} ({start}), round {t}: Z_t={_fmt(rows.queue[r, t])} J, "
                f"h={_fmt(self.exo.channel_gain[r, t])}, rate={_fmt(rows.rate[r, t])} bit/s, outage={bool(self.outage[r, t])}, "
                f"budget={int(rows.budget[r, t])}, sent={int(rows.sent[r, t])}, passes={int(rows.passes[r, t])}, "
                f"tokens={int(rows.tokens[r, t])}, E_t={_fmt(rows.energy[r, t])} J, a_t={_fmt(rows.arrival[r, t])} J")

    def path(self, r: int) -> str:
        return (f"{describe_scenario(self.scen)}; realization {r} (started at Z_0={_fmt(self.z0[r])} J), "
                f"{self.rows.budget.shape[1]} rounds, Z_T={_fmt(self.z_T[r])} J")


class _Run:
    """State shared by the invariants of one ``check_policy`` call."""

    def __init__(self, make, name, *, examples, fixed, statics, seed, declared):
        self.make = make
        self.name = name
        self.examples = examples
        self.fixed = dict(fixed or {})
        self.statics = {k: v for k, v in (DEFAULT_STATICS if statics is None else statics).items() if k not in self.fixed}
        self.seed = seed
        self.declared = declared
        self.context = ""  # the current example, readable
        self.notes: list[str] = []

    def scenarios(self, *, core: bool = False):
        """Scenarios with every leaf drawn (``core``: the laws of the draws at their defaults, so
        ``simulate`` compiles one sampler) except the fixed ones; each drawn leaf shrinks towards
        its default, so a counterexample names only the fields that matter."""
        names = gst.CORE_LEAVES if core else gst.SCENARIO_LEAVES
        return gst.scenarios(vary=[n for n in names if n not in self.fixed], statics=self.statics,
                             toward_defaults=True, **self.fixed)

    def cases(self, *, one_static: bool = False, **kw):
        """``(scenario, (exogenous, t0, Z_0, rejected_0))``; ``one_static``: statics at their first
        values and the draws' laws at their defaults (fewer compilations)."""
        @st.composite
        def case(draw):
            scen = draw(self.scenarios(core=one_static))
            if one_static:
                scen = scen.replace(**{k: v[0] for k, v in self.statics.items()})
            return scen, draw(_starts(scen, **kw))
        return case()

    def base_scenario(self) -> Scenario:
        return Scenario(**{**{k: v[0] for k, v in self.statics.items()}, **self.fixed})

    def hypothesis(self, fn, n: int, **strategies) -> None:
        """Run ``fn`` as a hypothesis property with ``n`` examples (shrinking on failure)."""
        deco = settings(
            max_examples=max(1, n), deadline=None, derandomize=self.seed is None, database=None,
            report_multiple_bugs=False, suppress_health_check=list(HealthCheck), print_blob=False,
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
        )
        test = deco(given(**strategies)(fn))
        if self.seed is not None:
            test = hypothesis_seed(self.seed)(test)
        with with_reporter(lambda _msg: None):
            test()


# ----------------------------------------------------------------------------- invariants
def _inv_budget_range(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        _check_bounds(ex.s, ex.rows, ex.raw, ex.outage, ex.where)

    run.hypothesis(case_fn, run.examples, case=run.cases())
    return run.examples


def _inv_round_outputs(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        _check_outputs(ex.rows, ex.where)

    run.hypothesis(case_fn, run.examples, case=run.cases())
    return run.examples


def _inv_finite(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        _check_finite(ex.rows, ex.raw, ex.state_ok, ex.where)

    run.hypothesis(case_fn, run.examples, case=run.cases())
    return run.examples


def _inv_energy_path(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        _check_energy_path(ex.rows.queue, ex.rows.energy, ex.rows.arrival, ex.z_T, ex.dtype, ex)

    run.hypothesis(case_fn, run.examples, case=run.cases())
    return run.examples


def _inv_drift(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        _check_drift(ex.rows.queue, ex.rows.energy, ex.rows.arrival, ex.z_T, ex.dtype, ex.where)

    run.hypothesis(case_fn, run.examples, case=run.cases())
    return run.examples


def _inv_purity(run: _Run) -> int:
    from .. import channel
    from ..policies.base import RoundObs

    def case_fn(case):
        ex = _Example(run, *case)
        s, p, aux, rows = ex.s, ex.p, ex.aux, ex.rows
        state0 = p.init_state(s, aux)
        h = ex.exo.channel_gain[0, 0]
        rate = channel.uplink_rate(s, h)
        obs = RoundObs(ex.t0[0], ex.z0[0], h, rate, channel.downlink_rate(s, h), channel.in_outage(s, rate), ex.rej0[0])
        row = jax.tree.map(lambda x: jnp.asarray(np.broadcast_to(x, rows.budget.shape)[0, 0]), rows)
        calls = {
            "init_state": lambda: p.init_state(s, aux),
            "choose_budget": lambda: p.choose_budget(s, aux, state0, obs),
            "draft": lambda: p.draft(s, aux, state0, row.budget, ex.exo.entropy[0, 0], obs),
            "update_state": lambda: p.update_state(s, aux, state0, RoundOutcome(
                row.budget, row.sent, row.passes, row.accepted, row.tokens, row.latency, row.energy, row.arrival)),
        }
        for name, call in calls.items():
            first, second = call(), call()
            if not _same(first, second):
                raise Violation(f"{name} returned {_fmt_tree(first)} then {_fmt_tree(second)} on the same arguments "
                                "(hidden state outside the arguments: a Python global, a counter, numpy.random?)",
                                ex.where(0))

    n = max(3, run.examples // 5)
    run.hypothesis(case_fn, n, case=run.cases())
    return n


def _inv_chunking(run: _Run) -> int:
    def case_fn(case, seed, perm):
        scen, (exo, t0, z0, rej0) = case
        ex = _Example(run, scen, (exo, t0, z0, rej0))
        perm = list(perm)
        ex_p = _Example(run, scen, (Exogenous(*(np.asarray(x)[perm] for x in exo)), t0[perm], z0[perm], rej0[perm]))
        for name in ex.rows._fields:
            x, y = np.asarray(getattr(ex.rows, name)), np.asarray(getattr(ex_p.rows, name))
            if x.ndim and not np.array_equal(x[perm], y, equal_nan=True):
                r = int(np.flatnonzero(~np.all(x[perm] == y, axis=tuple(range(1, x.ndim))))[0])
                raise Violation(f"rollout.{name} of realization {perm[r]} changes when the realizations are reordered",
                                ex.path(perm[r]))
        pol = run.make(scen)
        full = simulate(scen, pol, seed=seed, realizations=3, rounds=8)
        part = simulate(scen, pol, seed=seed, realizations=3, rounds=8, chunk=2)
        for k, v in full.as_dict().items():
            if not np.array_equal(v, getattr(part, k), equal_nan=True):
                raise Violation(f"simulate(...).{k} differs between chunk=3 and chunk=2: {_fmt(v)} vs {_fmt(getattr(part, k))}",
                                f"{describe_scenario(scen)}; seed {seed}, 3 realizations x 8 rounds")
        n_dev = jax.device_count()
        if n_dev > 1:
            from ..sweep import METRICS, sweep

            grid = {"E_bar": [float(scen.E_bar)]}
            one = sweep(scen, pol, grid, seed=seed, realizations=4, rounds=8, devices=1, progress=False)
            many = sweep(scen, pol, grid, seed=seed, realizations=4, rounds=8, devices=n_dev, progress=False)
            for k in METRICS:
                if not np.array_equal(one.metrics[k], many.metrics[k], equal_nan=True):
                    raise Violation(f"sweep metric {k} differs between 1 and {n_dev} devices", describe_scenario(scen))

    n = max(2, run.examples // 5)
    run.hypothesis(case_fn, n, case=run.cases(one_static=True), seed=st.integers(0, 2**31 - 1),
                   perm=st.permutations(range(_K)))
    if jax.device_count() == 1:
        run.notes.append("device count not tested: 1 device (set XLA_FLAGS=--xla_force_host_platform_device_count=4)")
    return n


def _perturbed(value):
    """Nearby values of a numeric field, in the order tried (the first that validates is used)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, np.integer)):
        return [int(value) + 1, int(value) - 1]
    v = float(value)
    return [v * 1.5 + 0.25, v * 0.5, v + 1.0, v / 2 + 1e-3]


_TRACE_IDS = itertools.count()


def _inv_no_retrace(run: _Run) -> int:
    scen = run.base_scenario()
    base = run.make(scen)
    _check_pytree(base)
    base.validate(scen)
    cls = type(base)
    rng = np.random.default_rng(0)
    g = scen.gamma_max
    exo = Exogenous(rng.exponential(1.0, (_K, _T)), np.full((_K, _T), float(scen.E_bar)),
                    rng.gamma(0.8, 1.5, (_K, _T, g)), rng.uniform(size=(_K, _T, g)))

    def fresh():
        def traced(s, p, e, t, z, r):
            return _record_rollout(s, p, e, t, z, r)

        # chex counts traces per footprint (call stack, source, name): a unique name gives this
        # check its own counter, so earlier checks in the same process do not count
        traced.__name__ = f"policy_rollout_{next(_TRACE_IDS)}"
        return jax.jit(chex.assert_max_traces(traced, n=1))

    fn = fresh()

    def trace(pol):
        s, p, dtype = engine.prepare(scen, pol, None)
        e = Exogenous(*(jnp.asarray(x, dtype) for x in exo))
        fn.lower(s, p, e, jnp.zeros(_K, jnp.int32), jnp.zeros(_K, dtype), jnp.zeros(_K, bool))  # traces, no compile

    trace(base)
    n = 0
    for name in field_names(cls):
        value = getattr(base, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        static = name in static_fields(cls)
        new = None
        for cand in _perturbed(value):
            try:
                new = base.replace(**{name: cand})
                new.validate(scen)
                break
            except ValueError:
                new = None
        if new is None:
            run.notes.append(f"{name}: no nearby valid value to try")
            continue
        n += 1
        try:
            trace(new)
        except AssertionError as exc:
            if "traced" not in str(exc):
                raise
            if static and isinstance(value, (int, np.integer)):  # shape-determining integers may be static
                run.notes.append(f"{name} is a static integer (changing it recompiles)")
                fn = fresh()
                trace(base)
                continue
            kind = "a static field" if static else "a leaf whose value reaches Python"
            raise Violation(f"changing {cls.__name__}.{name} from {value!r} to {getattr(new, name)!r} recompiles "
                            f"({kind}); declare numeric knobs with leaf_field so a sweep over them compiles once",
                            f"{describe_scenario(scen)}; policy {_describe_policy(base)}") from None
    return n


def _inv_monotone(run: _Run) -> int:
    def case_fn(case):
        ex = _Example(run, *case)
        b = ex.rows.budget[:, 0]
        z = np.asarray(ex.z0)
        up = np.flatnonzero(np.diff(b) > 0)
        if up.size:
            k = int(up[0])
            raise Violation(f"budget rose from {b[k]} at Z={_fmt(z[k])} J to {b[k + 1]} at Z={_fmt(z[k + 1])} J",
                            f"{ex.where(k * ex.rows.budget.shape[1])}; queues {_fmt(z)} -> budgets {b.tolist()}")

    run.hypothesis(case_fn, run.examples, case=run.cases(sorted_queue=True, queue_hi=1e6))
    return run.examples


def _need_V(run: _Run, what: str):
    pol = run.make(run.base_scenario())
    if "V" not in field_names(type(pol)):
        raise _Skip(f"{what} needs a field V")
    return callable(getattr(pol, "proxy_costs", None))


def _proxy_at_starts(ex: _Example, policy):
    h = ex.exo.channel_gain[:, 0]
    return (np.asarray(x) for x in _proxy_kernel(ex.s, policy, ex.t0, ex.z0, h, ex.rej0))


def _inv_optimal(run: _Run) -> int:
    if not _need_V(run, "per_slot_optimal"):
        raise _Skip("per_slot_optimal needs a method proxy_costs(scenario, aux, state, obs) -> (throughput, energy) per budget")

    def case_fn(case):
        ex = _Example(run, *case)
        budget, tp, en, outage = _proxy_at_starts(ex, ex.p)
        V = float(np.asarray(ex.p.V))
        tol = _ROUND_TOL * _eps(ex.dtype)
        for k in range(budget.shape[0]):
            u = V * tp[k].astype(np.float64) - float(ex.z0[k]) * en[k].astype(np.float64)
            allowed = ((np.arange(u.size) == 0) | (not bool(outage[k]))) & ~np.isnan(u)
            near, smallest = _near_argmax(u, allowed, tol)
            b = int(budget[k])
            scale = np.max(np.abs(np.where(allowed & np.isfinite(u), u, 0.0))) + 1e-300
            if not (allowed[b] and near[b]) or (near.sum() == 1 and b != smallest) or np.any(u[:b][allowed[:b]] > u[b] + tol * scale):
                raise Violation(f"budget {b} is not the smallest maximiser {smallest} of V·T̂ − Z·Ê = {_fmt(u)} (V={V:g})",
                                ex.where(k * ex.rows.budget.shape[1]))

    run.hypothesis(case_fn, run.examples, case=run.cases(queue_hi=1e6))
    return run.examples


def _inv_greedy(run: _Run) -> int:
    has_proxy = _need_V(run, "greedy_limit")

    def case_fn(case):
        ex = _Example(run, *case)
        big = float(np.finfo(np.dtype(ex.dtype)).max) / 16
        p_big = ex.p.replace(V=jnp.asarray(big, ex.dtype))
        T = ex.rows.budget.shape[1]
        if has_proxy:
            budget, tp, _, outage = _proxy_at_starts(ex, p_big)
        else:
            budget = _Example(run, ex.scen, case[1], policy=run.make(ex.scen).replace(V=big)).rows.budget[:, 0]
            exo, t0, z0, rej0 = case[1]
            ref = _Example(run, ex.scen, (exo, t0, np.zeros_like(z0), rej0)).rows.budget[:, 0]
        for k in range(budget.shape[0]):
            b = int(budget[k])
            if has_proxy:
                u = tp[k].astype(np.float64)
                allowed = ((np.arange(u.size) == 0) | (not bool(outage[k]))) & ~np.isnan(u)
                near, smallest = _near_argmax(u, allowed, _ROUND_TOL * _eps(ex.dtype))
                if not (allowed[b] and near[b]) or (near.sum() == 1 and b != smallest):
                    raise Violation(f"at V={big:.3g} the budget is {b}, not the maximiser {smallest} of T̂ = {_fmt(u)}",
                                    ex.where(k * T))
            elif b != int(ref[k]):
                raise Violation(f"at V={big:.3g} the budget is {b}, not the budget {int(ref[k])} at Z = 0", ex.where(k * T))

    run.hypothesis(case_fn, run.examples, case=run.cases(queue_hi=1e6))
    return run.examples


#: name → (claim, runner); the order of the report
INVARIANTS: dict[str, tuple[str, Callable[[_Run], int]]] = {
    "budget_range": ("budget in [0, γ_max] (the policy's own value), 0 in outage", _inv_budget_range),
    "round_outputs": ("0 ≤ sent ≤ budget, passes ∈ {sent, sent+1}, 1 ≤ tokens ≤ sent+1, Z ≥ 0", _inv_round_outputs),
    "finite": ("all outputs finite (budget, sent, passes, state, costs), queues up to 1e12 J", _inv_finite),
    "energy_path": ("§8.2 ΣE_t ≤ Σa_t + Z_T on every path; Z_(t+1) = max(Z_t + E_t − a_t, 0)", _inv_energy_path),
    "drift": ("§8 per-round drift ½Z²_(t+1) − ½Z²_t ≤ ½(E_t − a_t)² + Z_t(E_t − a_t)", _inv_drift),
    "purity": ("same inputs, same outputs (no hidden Python state)", _inv_purity),
    "chunking": ("results independent of chunk size, realization order and device count", _inv_chunking),
    "no_retrace": ("no recompilation across the policy's numeric field values", _inv_no_retrace),
    "monotone_in_queue": ("declared: a larger Z never picks a larger budget", _inv_monotone),
    "per_slot_optimal": ("declared: budget = smallest argmax of V·T̂ − Z·Ê (float64 brute force)", _inv_optimal),
    "greedy_limit": ("declared: as V → ∞ the budget maximises T̂", _inv_greedy),
}
DECLARABLE = ("monotone_in_queue", "per_slot_optimal", "greedy_limit")


def check_policy(
    policy,
    *,
    examples: int = 25,
    fixed: Mapping[str, Any] | None = None,
    statics: Mapping[str, Sequence[Any]] | None = None,
    declared: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    seed: int | None = None,
) -> CheckReport:
    """Run every invariant on ``policy`` and return a ``CheckReport`` (``.ok``, ``.format()``).

    Args:
      policy: a ``Policy`` instance, a ``Policy`` subclass (built with its defaults) or a factory
        ``scenario -> Policy`` (e.g. ``lambda s: Oracle.solve(s)``).
      examples: hypothesis examples per property (a few invariants run fewer: ``purity`` a fifth,
        ``chunking`` a fifth, as each example compiles or runs eagerly).
      fixed: scenario fields that are not drawn (e.g. ``{"W": 5e6}``).
      statics: static scenario field → values to draw (default ``DEFAULT_STATICS``).
      declared: declared properties to check (default: the class attribute
        ``declared_properties``); each in ``DECLARABLE``.
      only: run just these invariants.
      seed: hypothesis seed (default: derandomized, the same examples every run).
    """
    make, name = _factory(policy)
    if declared is None:
        declared = _declared(policy if isinstance(policy, (Policy, type)) else make(Scenario(**dict(fixed or {}))))
    declared = set(declared)
    bad = sorted(declared - set(DECLARABLE))
    if bad:
        raise ValueError(f"unknown declared properties {bad}; allowed: {list(DECLARABLE)}")
    names = list(INVARIANTS) if only is None else list(only)
    unknown = sorted(set(names) - set(INVARIANTS))
    if unknown:
        raise ValueError(f"unknown invariants {unknown}; known: {list(INVARIANTS)}")
    Scenario(**dict(fixed or {}))  # bad fixed fields: ValueError before any work
    run = _Run(make, name, examples=int(examples), fixed=fixed, statics=statics, seed=seed, declared=declared)
    _check_pytree(make(run.base_scenario()))  # ValueError: not a Policy, or not a pytree
    t_all = time.perf_counter()
    results = []
    for inv in names:
        claim, runner = INVARIANTS[inv]
        if inv in DECLARABLE and inv not in declared:
            results.append(InvariantResult(inv, "skip", claim, "not declared"))
            continue
        run.context, run.notes = "", []
        t0 = time.perf_counter()
        try:
            n = runner(run)
            msg = "; ".join(run.notes)
            results.append(InvariantResult(inv, "pass", claim, msg, examples=n, seconds=time.perf_counter() - t0))
        except _Skip as exc:
            results.append(InvariantResult(inv, "skip", claim, str(exc)))
        except Violation as exc:
            results.append(InvariantResult(inv, "FAIL", claim, exc.message, exc.where or run.context,
                                           seconds=time.perf_counter() - t0))
        except Unsatisfiable:
            results.append(InvariantResult(inv, "FAIL", claim, "no drawn scenario was accepted by the policy's validate()",
                                           seconds=time.perf_counter() - t0))
        except Exception as exc:  # the policy's own code raised: report it on the example that did
            text = str(exc).strip().splitlines()
            results.append(InvariantResult(inv, "FAIL", claim, f"raised {type(exc).__name__}: {text[0] if text else ''}",
                                           run.context, seconds=time.perf_counter() - t0))
    dtype = str(jnp.dtype(jnp.result_type(float)))
    return CheckReport(name, results, dtype, time.perf_counter() - t_all)
