r"""The physical scenario: docs/model.md §2 (channel), §3 (compute, payload, energy), §4 (token
surrogate), §9 (defaults).

``Scenario`` is a frozen pytree. Numeric knobs are leaves, so ``jax.vmap`` over a stacked
``Scenario`` sweeps them in one compiled program; mode strings and shape-determining integers
(``gamma_max``, ``m_max``, ``channel``, ``energy_arrival``) are static.

Every constructor call and ``replace`` validates concrete values and raises ``ValueError`` naming
the field and its allowed range. Values that are JAX tracers (inside ``jit``/``vmap``) are not
checked: they came from a validated object.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from .rng import DEFAULT_RNG, RNGS
from .pytree import Validated, check_choice, field_names, check_int, check_real, leaf_field, pytree_dataclass, static_field

__all__ = ["Scenario", "CHANNELS", "ENERGY_ARRIVALS", "ENTROPY_PROCESSES", "OBJECTIVES"]

CHANNELS = ("rayleigh", "gauss_markov", "trace")
ENERGY_ARRIVALS = ("constant", "exponential", "uniform")
ENTROPY_PROCESSES = ("round", "text")
# docs/model.md §3 (the paper's per-round E[N/D] under a per-round energy budget) and §11 (tokens per
# second ΣN/ΣD under an average-power budget P_bar, the renewal form)
OBJECTIVES = ("per_round", "time_average")

_S = "Scenario"


def _check_trace(name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{_S}.{name}: expected a 1-D sequence of positive finite gains, got {value!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{_S}.{name}: expected a non-empty 1-D sequence of positive finite gains, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{_S}.{name}: every gain must be finite and in (0, inf)")
    return tuple(float(x) for x in arr)


_check_bandwidth = check_real(_S, 0, None, lo_open=True)


def _check_after_reject_latent(name: str, value: Any) -> Any:
    """``None`` or ``(mu, c, sigma)``: the latent law of the first draft after a rejection (text process)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):  # "none": from --set
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{_S}.{name}: expected None or three reals (mu, c, sigma), got {value!r}") from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{_S}.{name}: expected None or three finite reals (mu, c, sigma), got {value!r}")
    mu, c, sd = (float(x) for x in arr)
    if not -5.0 <= mu <= 5.0:
        raise ValueError(f"{_S}.{name}: mu must be in [-5, 5], got {mu!r}")
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"{_S}.{name}: c must be in [-1, 1], got {c!r}")
    if not 0.0 < sd <= 5.0:
        raise ValueError(f"{_S}.{name}: sigma must be in (0, 5], got {sd!r}")
    return (mu, c, sd)


def _check_W_dl(name: str, value: Any) -> Any:
    """A downlink bandwidth in Hz, or the string ``"W"``: the downlink is tied to the uplink."""
    if isinstance(value, str) and value.strip() == "W":
        return "W"
    return _check_bandwidth(name, value)


_CHECKS = {
    # channel, docs/model.md §2
    "W": check_real(_S, 0, None, lo_open=True),
    "W_dl": _check_W_dl,
    "P_tx": check_real(_S, 0, None, lo_open=True),
    "P_edge": check_real(_S, 0, None, lo_open=True),
    "N0_dBm_Hz": check_real(_S, -300, 0),
    "NF_dB": check_real(_S, 0, 100),
    "d": check_real(_S, 0, 1e6, lo_open=True),
    "channel": check_choice(_S, CHANNELS),
    "rho": check_real(_S, 0, 1, hi_open=True),
    "channel_trace": _check_trace,
    "h_min": check_real(_S, 0, 1, lo_open=True),
    "r_min": check_real(_S, 0, None),
    # compute, docs/model.md §3
    "c_d": check_real(_S, 0, None, lo_open=True),
    "f": check_real(_S, 0, None, lo_open=True),
    "kappa": check_real(_S, 0, None, lo_open=True),
    "t_v0": check_real(_S, 0, None),
    "t_v1": check_real(_S, 0, None),
    "delta": check_real(_S, 0, None),
    # payload, docs/model.md §3
    "V_vocab": check_real(_S, 1, None),
    "b_id": check_real(_S, 0, None, lo_open=True),
    "b_prob": check_real(_S, 0, None, lo_open=True),
    "b_dl": check_real(_S, 0, None),
    "c_p": check_real(_S, 0, None, lo_open=True),
    "m_max": check_int(_S, 1, 1_000_000),
    # tokens, docs/model.md §4
    "gamma_max": check_int(_S, 1, 256),
    "k_H": check_real(_S, 0.05, 1e3),
    "theta_H": check_real(_S, 0, 1e4, lo_open=True),
    "rho_H": check_real(_S, 0, 1, hi_open=True),
    "entropy_process": check_choice(_S, ENTROPY_PROCESSES),
    "a0": check_real(_S, -1e3, 1e3),
    "a1": check_real(_S, 0, 1e3),
    "after_reject_H_scale": check_real(_S, 0.05, 20),
    "after_reject_a0_shift": check_real(_S, -1e3, 1e3),
    "after_reject_latent": _check_after_reject_latent,
    # energy, docs/model.md §1, §9
    "E_bar": check_real(_S, 0, None, lo_open=True),
    "energy_arrival": check_choice(_S, ENERGY_ARRIVALS),
    # objective, docs/model.md §11: "time_average" uses the power budget P_bar (W) instead of E_bar
    "objective": check_choice(_S, OBJECTIVES),
    "P_bar": check_real(_S, 0, None, lo_open=True),
    # simulation, not physics: the random-number generator (gelato_jax.rng)
    "rng": check_choice(_S, RNGS),
}


@pytree_dataclass(checks=_CHECKS)
class Scenario(Validated):
    r"""All physical parameters of one device–edge link (docs/model.md §2–§4, defaults §9).

    Channel (§2): ``g = g0·h``, ``g0 = 10^{-PL/10}``, ``PL_dB = 128.1 + 37.6 log10(d_km)``;
    uplink rate ``r = W log2(1 + P_tx g / (N0 W))``, downlink the same with ``W_dl``, ``P_edge``.
    ``W_dl = "W"`` ties the downlink bandwidth to the uplink's: the scenario then holds
    ``W_dl == W`` (a number) and ``W_dl_tied = True``, ``replace(W=...)`` moves both, and a sweep
    over ``W`` sweeps the bandwidth of both links ("bandwidth" in the sense of one shared band);
    a number given for ``W_dl`` unties them.
    ``channel`` selects i.i.d. Rayleigh (``h ~ Exp(1)``), Gauss–Markov fading with correlation
    ``rho`` (``h = |x|², x_{t+1} = rho x_t + sqrt(1-rho²) w_t``, ``w ~ CN(0,1)``, marginal Exp(1)),
    or a replayed ``channel_trace`` of unit-mean gains (cyclic, random start per realization).
    Draws are clamped to ``h ≥ h_min``; a round with uplink rate ``< r_min`` is in outage.

    Compute (§3): draft pass time ``c_d/f`` s, energy ``kappa c_d f²`` J; verification
    ``t_v0 + t_v1 L`` s; fixed latency ``delta`` s; downlink ``b_dl`` bits per round.

    Payload (§3): ``b_id``, ``b_prob`` bits; top-p support ``m(H) = min(V_vocab, m_max,
    ceil(c_p e^H))``.

    Tokens (§4): draft entropies ``H ~ Gamma(k_H, theta_H)`` (nats), optionally AR(1) along the
    positions of a round with lag-one correlation ``rho_H`` (beta–gamma autoregression, exact
    Gamma marginals); acceptance ``alpha(H) = sigmoid(a0 - a1 H)``; ``gamma_max`` = largest
    drafting budget.

    Entropy process [ours, LM calibration]: ``entropy_process="round"`` (default, docs/model.md §4) draws
    each round's entropies afresh (i.i.d., or the beta–gamma AR(1) along the round with
    ``rho_H``). ``"text"`` makes them one stationary process along the *text*, continued across
    rounds: a Gaussian copula ``H = θ_H·Q_k(Φ(x))`` with latent AR(1) ``x_{j+1} = rho_H·x_j +
    sqrt(1 − rho_H²)·ε_j`` over text positions (exact ``Gamma(k_H, θ_H)`` marginals), where a
    round's draft ``i`` sits at text position ``i`` after the round's start and the next round
    starts after the emitted text (``A + 1`` tokens: its first draft is ``A + 2 − m`` steps after
    the last latent value used, ``m = min(A + 1, P)``). Hard regions then persist from round to
    round, as in a real LM (an exit or a rejection happens where entropy is high, and the next
    round starts right there). Rounds are dependent (``optimum()`` and ``proxy="exact"`` refuse).

    After a rejection [ours, LM calibration]: a round that ends with a rejection emits a
    correction token sampled from the residual ``max(0, p − q)``, a token the draft model found
    unlikely, and a real draft is measurably less certain right after it (the tiny LM pair, first
    drafted position: mean entropy 2.06–2.09 vs 1.58–1.72 nats and acceptance 0.60 vs 0.70–0.72
    after a rejection vs after a bonus token). The same holds, more strongly, after an entropy
    exit (the device rejecting its own draft in a high-entropy region: mean entropy 2.27 next
    round), so both set the flag. ``after_reject_H_scale`` multiplies the entropy scale of the
    first drafted position of a round that follows a rejection or an exit
    (``H_1 ~ Gamma(k_H, after_reject_H_scale·theta_H)``) and ``after_reject_a0_shift`` shifts its
    acceptance intercept (``alpha_1(H) = sigmoid(a0 + after_reject_a0_shift − a1 H)``); every
    other position, and position 1 after a bonus token, keeps the law above. The defaults (1, 0)
    give docs/model.md §4's i.i.d. rounds exactly; other values make consecutive rounds dependent
    (outside the i.i.d. assumption of §8, so ``optimum()`` and ``proxy="exact"`` refuse them).

    After a rejection, text process [ours, LM calibration]: ``after_reject_latent = (mu, c,
    sigma)`` (``entropy_process="text"`` only; default ``None``) replaces, in a round that follows
    a rejection or an exit, the AR(1) step to the first draft's latent score by its own Gaussian
    regression on the carried latent ``x_a`` of the rejected (or exited) position:
    ``x_1 = mu + c·x_a + sigma·ε`` (``ε`` the round's first innovation; ``H_1 = θ_H·Q_k(Φ(x_1))``),
    after which the round continues by the AR(1) with ``rho_H``. It is what the LM data show (the
    first draft after a correction token is hard on average but regresses to the mean much faster
    than ``rho_H`` implies, with a narrow spread), fitted jointly with the carry-over, so
    ``after_reject_H_scale`` must then stay 1 (it would count the effect twice). ``None`` keeps the
    AR(1) step (``c = rho_H``, ``mu = 0``, ``sigma = sqrt(1 − rho_H²)``), i.e. exact
    ``Gamma(k_H, θ_H)`` marginals at every text position; with it set, positions after a
    rejection have their own law (positions after a bonus token keep the AR(1)). Values:
    ``mu ∈ [−5, 5]``, ``c ∈ [−1, 1]``, ``sigma ∈ (0, 5]``; a static field (not swept by ``vmap``).

    Energy (§1): per-round budget ``E_bar`` J, delivered as a constant or as random arrivals
    (``exponential`` or ``uniform`` on ``[0, 2 E_bar]``) with mean ``E_bar``.

    Objective (docs/model.md §11) [ours]: ``objective="per_round"`` (default, the paper's) maximises the
    mean of per-round ratios ``E[N/D]`` under the per-round energy budget ``E_bar``;
    ``"time_average"`` maximises tokens per second ``ΣN/ΣD`` under the average-power budget
    ``P_bar`` (W, ``ΣE/ΣD ≤ P_bar``): the queue becomes ``Z_{t+1} = max(Z_t + E_t − P_bar·D_t, 0)``
    and ``E_bar``/``energy_arrival`` are not used by it. ``gelato_jax.renewal`` solves that problem.

    Simulation: ``rng`` selects the random-number generator of the exogenous draws
    (``gelato_jax.rng``: ``"mix32"``, the fast counter-based default, or ``"threefry"``, JAX's).
    It changes which sample is drawn, never the law.
    """

    W: float = leaf_field(1e6, unit="Hz")
    W_dl: float = leaf_field(1e6, unit="Hz")  # or "W": tied to the uplink (W_dl_tied)
    P_tx: float = leaf_field(0.2, unit="W")
    P_edge: float = leaf_field(1.0, unit="W")
    N0_dBm_Hz: float = leaf_field(-174.0, unit="dBm/Hz")
    NF_dB: float = leaf_field(7.0, unit="dB")
    d: float = leaf_field(300.0, unit="m")
    channel: str = static_field("rayleigh")
    rho: float = leaf_field(0.0)
    channel_trace: tuple | None = static_field(None)
    h_min: float = leaf_field(1e-12)
    r_min: float = leaf_field(1e5, unit="bit/s")
    c_d: float = leaf_field(3e7, unit="cycles/token")
    f: float = leaf_field(2e9, unit="Hz")
    kappa: float = leaf_field(2.5e-28)
    t_v0: float = leaf_field(0.025, unit="s")
    t_v1: float = leaf_field(0.002, unit="s")
    delta: float = leaf_field(0.020, unit="s")
    V_vocab: float = leaf_field(151936.0)
    b_id: float = leaf_field(18.0, unit="bit")
    b_prob: float = leaf_field(16.0, unit="bit")
    b_dl: float = leaf_field(32.0, unit="bit")
    c_p: float = leaf_field(2.0)
    m_max: int = static_field(1024)
    gamma_max: int = static_field(10)
    k_H: float = leaf_field(0.8)
    theta_H: float = leaf_field(1.5, unit="nats")
    rho_H: float = leaf_field(0.0)
    entropy_process: str = static_field("round")
    a0: float = leaf_field(4.8)
    a1: float = leaf_field(1.8, unit="1/nats")
    after_reject_H_scale: float = leaf_field(1.0)
    after_reject_a0_shift: float = leaf_field(0.0)
    after_reject_latent: tuple | None = static_field(None)  # (mu, c, sigma), entropy_process="text" only
    E_bar: float = leaf_field(0.06, unit="J/round")
    energy_arrival: str = static_field("constant")
    objective: str = static_field("per_round")
    P_bar: float = leaf_field(0.6, unit="W")
    rng: str = static_field(DEFAULT_RNG)
    # derived from W_dl (not a constructor argument): True when W_dl was given as "W"
    W_dl_tied: bool = dataclasses.field(default=False, init=False, metadata={"static": True})

    def __post_init__(self):
        tied = isinstance(self.W_dl, str)
        object.__setattr__(self, "W_dl_tied", tied)
        if tied:
            object.__setattr__(self, "W_dl", self.W)

    def _validate_cross(self) -> None:
        if np.any(np.asarray(self.t_v0, dtype=float) + np.asarray(self.delta, dtype=float) <= 0):
            raise ValueError(
                "Scenario.t_v0 + Scenario.delta must be > 0 (a round without drafting must take time)"
            )
        if self.channel == "trace" and self.channel_trace is None:
            raise ValueError("Scenario.channel_trace must be given (a 1-D sequence of gains) when channel='trace'")
        if self.after_reject_latent is not None:
            if self.entropy_process != "text":
                raise ValueError("Scenario.after_reject_latent applies to entropy_process='text' only (it must be None "
                                 f"with {self.entropy_process!r})")
            if np.any(np.asarray(self.after_reject_H_scale, dtype=float) != 1.0):
                raise ValueError("Scenario.after_reject_H_scale must be 1 when Scenario.after_reject_latent is set (the "
                                 "latent law already gives position 1 after a rejection; both would count it twice)")

    def check_iid_rounds(self, what: str) -> None:
        """Raise ``ValueError`` unless consecutive rounds are i.i.d. (the ``after_reject_*`` law is
        neutral), which ``what`` needs (the theory of docs/model.md §8 assumes i.i.d. states)."""
        scale = np.asarray(self.after_reject_H_scale, dtype=float)
        shift = np.asarray(self.after_reject_a0_shift, dtype=float)
        if self.entropy_process != "round":
            raise ValueError(f"{what} needs i.i.d. rounds: Scenario.entropy_process must be 'round', got "
                             f"{self.entropy_process!r} (the 'text' process continues across rounds)")
        if np.any(scale != 1.0) or np.any(shift != 0.0):
            raise ValueError(
                f"{what} needs i.i.d. rounds: Scenario.after_reject_H_scale must be 1 and "
                f"Scenario.after_reject_a0_shift must be 0 (got {scale.tolist()}, {shift.tolist()}); with them the "
                "round after a rejection has its own law, so rounds depend on their predecessors")

    # ----------------------------------------------------------------- derived quantities
    @property
    def g0(self):
        """Large-scale gain ``10^{-PL_dB/10}``, ``PL_dB = 128.1 + 37.6 log10(d/1000)``."""
        pl_db = 128.1 + 37.6 * jnp.log10(jnp.asarray(self.d) / 1000.0)
        return 10.0 ** (-pl_db / 10.0)

    @property
    def N0(self):
        """Noise power spectral density in W/Hz, noise figure included."""
        return 10.0 ** ((jnp.asarray(self.N0_dBm_Hz) + self.NF_dB - 30.0) / 10.0)

    @property
    def tau_d(self):
        """Draft pass time ``c_d / f`` (s)."""
        return self.c_d / jnp.asarray(self.f)

    @property
    def e_d(self):
        """Draft pass energy ``kappa c_d f²`` (J)."""
        return self.kappa * self.c_d * jnp.asarray(self.f) ** 2

    @property
    def mean_snr(self):
        """Uplink SNR at unit fading, ``P_tx g0 / (N0 W)``."""
        return self.P_tx * self.g0 / (self.N0 * self.W)

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Scenario":
        unknown = sorted(set(values) - set(field_names(cls)) | ({"W_dl_tied"} & set(values)))
        if unknown:
            raise ValueError(f"Scenario: unknown field(s) {unknown}; known fields: {list(field_names(cls))}")
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "Scenario":
        """Read a scenario from a TOML file: top-level keys, or the keys of a ``[scenario]`` table."""
        data = read_toml(path)
        if "scenario" in data and isinstance(data["scenario"], dict):
            data = data["scenario"]
        else:
            data = {k: v for k, v in data.items() if not isinstance(v, dict)}
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name in field_names(self):
            if name == "W_dl_tied":
                continue
            v = getattr(self, name)
            if name == "W_dl" and self.W_dl_tied:
                v = "W"
            if isinstance(v, tuple):
                v = list(v)
            elif not isinstance(v, (str, int, float)) and v is not None:
                arr = np.asarray(v)
                v = arr.tolist()
            out[name] = v
        return out

    @classmethod
    def field_type(cls, name: str) -> type:
        """The Python type of a field, for parsing command-line ``--set`` values."""
        default = cls.__dataclass_fields__[name].default
        if name in ("channel_trace", "after_reject_latent"):
            return tuple
        return type(default)


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file, raising ``ValueError`` with the path on a missing or malformed file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path!r} is not valid TOML: {exc}") from None



_pytree_replace = Scenario.replace


def _replace(self, **changes):
    """``dataclasses.replace`` with the downlink tie kept: on a tied scenario (``W_dl = "W"``)
    ``W_dl`` follows ``W`` unless ``changes`` gives ``W_dl`` (a number unties)."""
    if "W_dl_tied" in changes:
        raise ValueError('Scenario.W_dl_tied is derived; set W_dl="W" (tied) or a number (untied)')
    if self.W_dl_tied and "W_dl" not in changes:
        changes["W_dl"] = "W"
    return _pytree_replace(self, **changes)


Scenario.replace = _replace
