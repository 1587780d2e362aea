r"""Calibration of the surrogate token process from LM mode or logged pairs (docs/model.md §4).

Fits, from ``(entropy, accepted[, support])`` records:

* the acceptance map ``α(H) = σ(a0 − a1 H)`` by maximum likelihood (Bernoulli log-likelihood,
  ``scipy.optimize.minimize`` trust-region Newton with the analytic gradient and Hessian; standard errors from the inverse
  Hessian), compared to a binned estimate (equal-count bins of ``H``, Wilson 95 % intervals from
  ``scipy.stats.binomtest(...).proportion_ci``);
* the entropy law ``H ~ Gamma(k_H, θ_H)`` (``scipy.stats.gamma.fit`` with ``floc=0``) over
  **all drafted positions** (not only the verified ones: positions after the first rejection
  are drafted and sent but not verified, and restricting to verified positions would bias the
  law towards low entropies), which is the population the surrogate draws ``H_1..H_γ̃`` from;
* the **text process** (LM mode, ``entropy_process="text"``, the default): the entropies of a
  real draft are one process along the text, and hard regions persist from round to round. The
  surrogate models this by a Gaussian copula (``Scenario`` docstring); ``rho_H`` is fitted as the
  pooled lag-one Pearson correlation of the normal scores ``Φ^{-1}(F_Gamma(H))`` of consecutive
  drafted positions of a round (measured with the committed pair: 0.553; lags 2, 3, 5 give 0.36,
  0.27, 0.22 against the AR(1)'s 0.31, 0.17, 0.05 — the memory is longer than AR(1), so the
  surrogate is still approximate). ``--entropy-process round`` writes docs/model.md §4's i.i.d. rounds
  instead; the within-round beta–gamma AR(1) correlation of the raw entropies (0.436) is always
  reported and written as ``rho_H`` only with ``--entropy-process round --write-rho`` — history:
  on its own it moved the surrogate *away* from LM mode (Gelato bucket exit z = +6.5 → +8.0),
  because what matters is the link *across* rounds, not within one;
* the payload constant ``c_p`` of ``m(H) ≈ c_p e^H`` (§3), least squares in log space:
  ``log c_p = mean(log m − H)``;
* the **after-rejection law** (``positional=True``, the default; ``--pooled`` turns it off), the
  fix for the non-stationarity above. Its cause, measured (64 sequences × 60 rounds, budgets 1
  and 3, seed 1): the first draft of a round that follows a *rejection* comes right after the
  correction token sampled from the residual ``max(0, p − q)`` — a token the draft found
  unlikely — and has mean entropy 2.06–2.09 nats and acceptance 0.60, whereas after a bonus token
  (all drafts accepted) it has 1.58–1.72 nats and 0.70–0.72, like later positions. So the
  acceptance map is fitted jointly as ``σ(a0 + s·1{i = 1, after a rejection} − a1 H)`` (maximum
  likelihood, same solver; ``s`` → ``after_reject_a0_shift``), the entropy law ``Gamma(k_H, θ_H)``
  on positions ``i ≥ 2``, and the scale of position 1 after a rejection by maximum likelihood with
  the shape fixed, ``θ_r = mean(H_1 | after a rejection)/k_H`` (→ ``after_reject_H_scale =
  θ_r/θ_H``). ``Scenario.after_reject_H_scale``/``after_reject_a0_shift`` carry them into the
  surrogate, whose rounds then remember whether the previous round had a rejection (sampling,
  acceptance, the controller's mean proxy). From a CSV, the optional ``after_reject`` column (1 =
  the pair is the first draft of a round that follows a rejection) gives
  ``after_reject_a0_shift``; ``after_reject_H_scale`` is fitted only in LM mode (a CSV holds
  verified positions only, and positions ``i ≥ 2`` are verified only after accepted prefixes,
  which biases their entropies low, so the ratio would be biased).
* with the **text process** (LM mode, a structured CSV) the first draft after a rejection is
  fitted *given* the carry-over instead: ``after_reject_latent = (mu, c, sigma)``, the least-squares
  regression of its normal score on the normal score of the rejected draft of the previous
  round (:func:`fit_after_reject_latent`; jackknife standard errors over sequences), and
  ``after_reject_H_scale`` stays 1. History: the raw ratio 1.13 on top of the carried latent
  counted the hard text after a rejection twice (first draft after a rejection 2.61 nats in the
  surrogate vs 2.01 in LM mode; StaticSD(4) accepted −7.7 %); measured on the committed pair
  the regression is ``0.19 + 0.25·z_a`` with residual s.d. 0.67, against the AR(1)'s ``0.53·z_a``
  and 0.85 (docs/lm_validation_kv.md).

Pairs from LM mode: each round drafts ``γ_max`` positions without early exit (so the entropy
law is the per-position marginal and every verified position counts); a draft at position ``i``
is *verified* iff ``i ≤ A`` and accepted iff ``i < A`` — the conditional acceptance that the
surrogate's ``U_i < α(H_i)`` models.

CSV input: a header line with columns ``entropy`` (nats) and ``accepted`` (0/1), optionally
``support`` (top-p set size ``m``; without it ``c_p`` is not fitted) and ``after_reject`` (0/1: the
pair is the first draft of a round that follows a rejection; without it the shift is not fitted).  Extra columns are ignored.
CSV rows carry no round structure, so ``rho_H`` is not fitted from a CSV (the scenario keeps 0).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from scipy import optimize, stats

from .weights_io import atomic_write_bytes, atomic_write_json

__all__ = [
    "collect_pairs",
    "read_pairs_csv",
    "write_pairs_csv",
    "fit_acceptance",
    "binned_acceptance",
    "fit_entropy_law",
    "fit_payload_constant",
    "fit_entropy_correlation",
    "fit_first_position_scale",
    "fit_text_correlation",
    "fit_after_reject_latent",
    "calibration_toml",
    "run_calibration",
    "validate_calibration",
    "validate_csv_calibration",
    "write_structured_csv",
    "STRUCTURED_COLUMNS",
    "SMALL_SAMPLE",
]


def collect_pairs(pair, *, rounds: int = 40, sequences: int = 64, gamma_max: int = 10, top_p: float = 0.95,
                  seed: int = 0, quiet: bool = False) -> dict[str, np.ndarray]:
    """Run ``rounds`` LM-mode rounds of ``sequences`` sequences (full budget, no exit).

    Returns:
      dict with ``entropy``/``accepted``/``support``/``after_reject`` (first draft of a round after a
      rejection) of verified positions, ``rounds_after_reject`` (per round row), ``all_entropy`` and
      ``all_support`` of every drafted position, ``entropy_rounds`` ``(rounds·R, γ_max)`` (the
      drafted entropies of each round in position order) and per-round ``accepted_count``
      ``(rounds, R)``.
    """
    from tqdm.auto import tqdm

    from .rounds import acceptance_pairs, corpus_contexts, lm_round
    from .simulate import uses_kv_cache

    for name, v in (("rounds", rounds), ("sequences", sequences), ("gamma_max", gamma_max)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    root = jax.random.key(seed)
    ctx = corpus_contexts(jax.random.fold_in(root, 0), sequences, pair.context_len)
    budget = np.full((sequences,), gamma_max, np.int32)
    cached = uses_kv_cache(pair)
    if cached:  # LM mode's own rounds: KV-cached, sliding window over the whole text
        import jax.numpy as jnp

        from .cached import lm_round_cached, prefill

        state = jax.jit(jax.vmap(lambda c: prefill(pair, c, gamma_max)))(ctx)
        step = jax.jit(jax.vmap(lambda st, k: lm_round_cached(pair, st, jnp.int32(gamma_max), k, exit_on=False,
                                                              top_p=top_p, gamma_max=gamma_max)))
    ent, acc, sup, first_rej, round_rej, all_e, all_m, a_counts = [], [], [], [], [], [], [], []
    prev_rej = np.zeros((sequences,), bool)  # the corpus context is not a correction
    for t in tqdm(range(rounds), desc="calibrate", disable=True if quiet else None):
        if cached:
            kt = jax.random.fold_in(root, t + 1)
            out = step(state, jax.vmap(lambda r: jax.random.fold_in(kt, r))(jnp.arange(sequences)))
            state = out.state
        else:
            out = lm_round(pair, ctx, budget, jax.random.fold_in(root, t + 1), exit=False, top_p=top_p,
                           gamma_max=gamma_max)
            ctx = out.context
        e, a, m, i, row = acceptance_pairs(out, with_position=True)
        ent.append(e), acc.append(a), sup.append(m), first_rej.append((i == 1) & prev_rej[row])
        round_rej.append(prev_rej.copy())
        prev_rej = np.asarray(out.accepted) < np.asarray(out.sent)
        all_e.append(np.asarray(out.entropy).reshape(-1, gamma_max))
        all_m.append(np.asarray(out.support).ravel())
        a_counts.append(np.asarray(out.accepted))
    return {
        "entropy": np.concatenate(ent).astype(np.float64),
        "accepted": np.concatenate(acc).astype(bool),
        "support": np.concatenate(sup).astype(np.int64),
        "after_reject": np.concatenate(first_rej).astype(bool),
        "rounds_after_reject": np.concatenate(round_rej).astype(bool),
        "all_entropy": np.concatenate(all_e).ravel().astype(np.float64),
        "entropy_rounds": np.concatenate(all_e).astype(np.float64),
        "all_support": np.concatenate(all_m).astype(np.int64),
        "accepted_count": np.stack(a_counts),
        "round_sequence": np.tile(np.arange(sequences), rounds),
        "round_index": np.repeat(np.arange(rounds), sequences),
        "support_rounds": np.concatenate(all_m).reshape(-1, gamma_max).astype(np.float64),
    }


STRUCTURED_COLUMNS = ("sequence", "round", "position", "entropy", "accepted")


def write_structured_csv(path, data: dict[str, np.ndarray]) -> int:
    r"""Write LM-mode pairs (:func:`collect_pairs`) in the structured log schema (``docs/lm_logs.md``):
    one row per *drafted* position, columns ``sequence, round, position, entropy, accepted, support,
    after_reject``; ``accepted`` is 1/0 on verified positions and empty on the positions after the
    first rejection (drafted and sent, not verified).  Entropies are written with 9 significant
    digits (the float32 value is recovered; fits of the file agree with LM mode's to ~1e-7
    relative).  Returns the number of rows."""
    e = np.asarray(data["entropy_rounds"], np.float64)
    m = np.asarray(data["support_rounds"], np.float64) if "support_rounds" in data else np.full(e.shape, np.nan)
    acount = np.asarray(data["accepted_count"]).ravel()  # (rounds, R) → round-row order (t, r)
    seq, rnd, rej = data["round_sequence"], data["round_index"], data["rounds_after_reject"]
    lines = ["sequence,round,position,entropy,accepted,support,after_reject"]
    n = 0
    for k in range(e.shape[0]):
        a = int(acount[k])
        for i in range(e.shape[1]):
            if not math.isfinite(e[k, i]):
                continue
            accepted = "1" if i < a else ("0" if i == a else "")
            sup = f"{int(m[k, i])}" if math.isfinite(m[k, i]) else ""
            lines.append(f"{int(seq[k])},{int(rnd[k])},{i + 1},{e[k, i]:.9g},{accepted},{sup},"
                         f"{int(bool(rej[k]) and i == 0)}")
            n += 1
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return n


def _read_structured(path, rows, cols) -> dict[str, np.ndarray]:
    """The structured schema → the same arrays as :func:`collect_pairs` (docs/lm_logs.md)."""
    def num(name, r, allow_blank=False):
        v = r[name].strip() if r[name] is not None else ""
        if v == "" and allow_blank:
            return math.nan
        return float(v)

    try:
        seq = np.array([num("sequence", r) for r in rows])
        rnd = np.array([num("round", r) for r in rows])
        pos = np.array([num("position", r) for r in rows])
        ent = np.array([num("entropy", r) for r in rows])
        acc = np.array([num("accepted", r, True) for r in rows])
        sup = np.array([num("support", r, True) for r in rows]) if "support" in cols else None
        rej_col = np.array([num("after_reject", r, True) for r in rows]) if "after_reject" in cols else None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: non-numeric value ({e})") from None
    for name, v in (("sequence", seq), ("round", rnd), ("position", pos)):
        if not np.all((v == np.round(v)) & (v >= (1 if name == "position" else 0))):
            raise ValueError(f"{path}: {name} must hold integers >= {1 if name == 'position' else 0}")
    if not np.all(np.isfinite(ent) & (ent >= 0)):
        raise ValueError(f"{path}: entropy must be finite and >= 0 (nats)")
    if not np.all(np.isnan(acc) | (acc == 0) | (acc == 1)):
        raise ValueError(f"{path}: accepted must be 0, 1 or empty (drafted, not verified)")
    if sup is not None and not np.all(np.isnan(sup) | (sup >= 1)):
        raise ValueError(f"{path}: support must be >= 1 (or empty)")
    order = np.lexsort((pos, seq, rnd))  # rounds in time order, then sequence, then position
    seq, rnd, pos, ent, acc = seq[order].astype(np.int64), rnd[order].astype(np.int64), pos[order].astype(np.int64), \
        ent[order], acc[order]
    sup = sup[order] if sup is not None else None
    rej_col = rej_col[order] if rej_col is not None else None
    key = np.stack([rnd, seq], 1)
    starts = np.flatnonzero(np.r_[True, np.any(key[1:] != key[:-1], axis=1)])
    ends = np.r_[starts[1:], len(seq)]
    gmax = int(np.max(ends - starts))
    n_r = len(starts)
    e_rounds = np.full((n_r, gmax), np.nan)
    m_rounds = np.full((n_r, gmax), np.nan)
    a_count = np.zeros(n_r, np.int64)
    rejected = np.zeros(n_r, bool)
    for k, (a, b) in enumerate(zip(starts, ends)):
        if not np.array_equal(pos[a:b], np.arange(1, b - a + 1)):
            raise ValueError(f"{path}: sequence {seq[a]} round {rnd[a]}: positions must be 1, 2, ... without gaps "
                             f"or repeats, got {pos[a:b].tolist()}")
        y = acc[a:b]
        ver = ~np.isnan(y)
        nv = int(ver.sum())
        # verification stops at the first rejection: 1 … 1 [0] then empty
        if not (np.all(ver[:nv]) and np.all(y[:nv][:-1] == 1) and (nv == b - a or (nv >= 1 and y[nv - 1] == 0))):
            raise ValueError(f"{path}: sequence {seq[a]} round {rnd[a]}: accepted must read 1,…,1 then one 0 and "
                             f"empty cells after it (verification stops at the first rejection), got "
                             f"{['' if np.isnan(v) else int(v) for v in y]}")
        e_rounds[k, :b - a] = ent[a:b]
        if sup is not None:
            m_rounds[k, :b - a] = sup[a:b]
        a_count[k] = int(np.nansum(y))
        rejected[k] = nv >= 1 and y[nv - 1] == 0
    # a round follows a rejection iff the same sequence's previous logged round is round − 1 and had one
    rseq, rr = seq[starts], rnd[starts]
    after = np.zeros(n_r, bool)
    last: dict[int, tuple[int, bool]] = {}
    for k in range(n_r):
        prev = last.get(int(rseq[k]))
        after[k] = prev is not None and prev[0] == rr[k] - 1 and prev[1]
        last[int(rseq[k])] = (int(rr[k]), bool(rejected[k]))
    if rej_col is not None:  # an explicit after_reject column wins (position-1 rows carry the flag)
        after = np.asarray([bool(rej_col[a] == 1) for a in starts])
    verified = ~np.isnan(acc)
    row_round = np.repeat(np.arange(n_r), ends - starts)
    first = (pos == 1) & after[row_round]
    out = {
        "entropy": ent[verified], "accepted": acc[verified].astype(bool), "after_reject": first[verified],
        "rounds_after_reject": after, "all_entropy": ent, "entropy_rounds": e_rounds,
        "accepted_count": a_count, "round_sequence": rseq, "round_index": rr, "structured": np.asarray(True),
    }
    if sup is not None and np.all(np.isfinite(sup)):
        out["support"] = sup[verified].astype(np.int64)
        out["all_support"] = sup.astype(np.int64)
        out["support_rounds"] = m_rounds
    return out


def read_pairs_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV of logged pairs (header required), in one of two schemas (``docs/lm_logs.md``):

    * **structured**: ``sequence, round, position, entropy, accepted`` (optional ``support``,
      ``after_reject``), one row per drafted position, ``accepted`` empty after the first
      rejection: gives the same arrays as :func:`collect_pairs` (round structure included), so the
      text process, the after-rejection law and ``c_p`` are fitted as in LM mode;
    * **flat**: ``entropy, accepted`` (optional ``support``, ``after_reject``), verified pairs only.

    Raises:
      ValueError: missing columns, non-numeric values, negative entropy, accepted not 0/1,
        positions with gaps, or an ``accepted`` pattern verification cannot produce.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"csv file {str(path)!r} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        for need in ("entropy", "accepted"):
            if need not in cols:
                raise ValueError(f"{path}: column {need!r} missing (columns: {cols}; need entropy,accepted, or the "
                                 f"structured schema {','.join(STRUCTURED_COLUMNS)})")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    partial = [c for c in ("sequence", "round", "position") if c in cols]
    if partial and len(partial) < 3:
        raise ValueError(f"{path}: the structured schema needs all of sequence, round, position; got only {partial}")
    if partial:
        return _read_structured(path, rows, cols)
    try:
        ent = np.array([float(r["entropy"]) for r in rows])
        acc = np.array([float(r["accepted"]) for r in rows])
        sup = np.array([float(r["support"]) for r in rows]) if "support" in cols else None
        rej = np.array([float(r["after_reject"]) for r in rows]) if "after_reject" in cols else None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: non-numeric value ({e})") from None
    if not np.all(np.isfinite(ent) & (ent >= 0)):
        raise ValueError(f"{path}: entropy must be finite and >= 0 (nats)")
    if not np.all((acc == 0) | (acc == 1)):
        raise ValueError(f"{path}: accepted must be 0 or 1")
    out = {"entropy": ent, "accepted": acc.astype(bool), "all_entropy": ent}
    if sup is not None:
        if not np.all(sup >= 1):
            raise ValueError(f"{path}: support must be >= 1")
        out["support"] = sup.astype(np.int64)
        out["all_support"] = out["support"]
    if rej is not None:
        if not np.all((rej == 0) | (rej == 1)):
            raise ValueError(f"{path}: after_reject must be 0 or 1 (1 = first draft of a round after a rejection)")
        out["after_reject"] = rej.astype(bool)
    return out


def write_pairs_csv(path, entropy, accepted, support=None, after_reject=None) -> None:
    lines = ["entropy,accepted" + (",support" if support is not None else "") + (",after_reject" if after_reject is not None else "")]
    for i in range(len(entropy)):
        row = f"{float(entropy[i]):.6g},{int(accepted[i])}"
        if support is not None:
            row += f",{int(support[i])}"
        if after_reject is not None:
            row += f",{int(after_reject[i])}"
        lines.append(row)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def fit_acceptance(entropy, accepted, first=None) -> dict[str, float]:
    r"""Maximum-likelihood ``(a0, a1)`` of ``P(accept | H) = σ(a0 − a1 H)``.

    With ``first`` (a boolean mask of the pairs that are the first draft of a round after a
    rejection) the model is ``σ(a0 + s·first − a1 H)`` and ``s`` is returned as
    ``after_reject_a0_shift`` (``after_reject_a0_shift_se``).

    Returns:
      ``a0, a1`` and their standard errors ``a0_se, a1_se`` (inverse observed information),
      and the mean log-likelihood per pair.
    """
    h = np.asarray(entropy, np.float64)
    y = np.asarray(accepted, np.float64)
    if h.shape != y.shape or h.size < 2:
        raise ValueError("entropy and accepted must be equal-length arrays with at least 2 pairs")
    cols = [np.ones_like(h), -h]
    if first is not None:
        first = np.asarray(first, bool)
        if first.shape != h.shape:
            raise ValueError("first must be a boolean mask with one entry per pair")
        if first.all() or not first.any():
            raise ValueError("the after-rejection fit needs pairs with and without the after-rejection flag")
        cols.append(first.astype(np.float64))
    X = np.stack(cols, axis=1)

    n = h.size

    def nll(w):  # mean negative log-likelihood and its gradient
        z = X @ w
        return float(np.mean(np.logaddexp(0.0, z) - y * z)), X.T @ (1.0 / (1.0 + np.exp(-z)) - y) / n

    def hess(w):
        s = 1.0 / (1.0 + np.exp(-(X @ w)))
        return X.T @ (X * (s * (1 - s))[:, None]) / n

    res = optimize.minimize(nll, np.zeros(X.shape[1]), jac=True, hess=hess, method="trust-exact",
                            options={"gtol": 1e-10})
    w = res.x
    s = 1.0 / (1.0 + np.exp(-(X @ w)))
    info = X.T @ (X * (s * (1 - s))[:, None])
    try:
        se = np.sqrt(np.diag(np.linalg.inv(info)))
    except np.linalg.LinAlgError:
        se = np.full(X.shape[1], np.nan)
    out = {"a0": float(w[0]), "a1": float(w[1]), "a0_se": float(se[0]), "a1_se": float(se[1]),
           "mean_loglik": float(-res.fun), "converged": bool(res.success)}
    if first is not None:
        out.update(after_reject_a0_shift=float(w[2]), after_reject_a0_shift_se=float(se[2]))
    return out


def binned_acceptance(entropy, accepted, n_bins: int = 10, confidence: float = 0.95,
                      predicted=None) -> list[dict[str, float]]:
    """Equal-count bins of ``H``: mean ``H``, acceptance rate, Wilson interval, count; with
    ``predicted`` (per-pair model probabilities) also their mean per bin as ``fitted``."""
    h = np.asarray(entropy, np.float64)
    y = np.asarray(accepted, bool)
    order = np.argsort(h, kind="stable")
    bins = []
    for idx in np.array_split(order, n_bins):
        if idx.size == 0:
            continue
        k, n = int(y[idx].sum()), int(idx.size)
        ci = stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
        bins.append({"h_mean": float(h[idx].mean()), "h_lo": float(h[idx].min()), "h_hi": float(h[idx].max()),
                     "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high), "n": n})
        if predicted is not None:
            bins[-1]["fitted"] = float(np.asarray(predicted, np.float64)[idx].mean())
    return bins


def fit_entropy_law(entropy) -> dict[str, float]:
    """``Gamma(k_H, θ_H)`` by maximum likelihood with location fixed at 0 (values clamped ≥ 1e-6)."""
    h = np.asarray(entropy, np.float64).ravel()
    h = np.maximum(h[np.isfinite(h)], 1e-6)  # NaN: padding of rounds shorter than γ (structured CSV)
    k, _, theta = stats.gamma.fit(h, floc=0)
    # standard errors from the inverse Fisher information n [[ψ'(k), 1/θ], [1/θ, k/θ²]]
    from scipy import special

    info = h.size * np.array([[special.polygamma(1, k), 1 / theta], [1 / theta, k / theta ** 2]])
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    return {"k_H": float(k), "theta_H": float(theta), "k_H_se": float(se[0]), "theta_H_se": float(se[1]),
            "mean_H": float(h.mean()), "std_H": float(h.std()), "n_entropies": int(h.size)}


def fit_entropy_correlation(entropy_rounds) -> dict[str, float]:
    r"""Lag-one correlation ``rho_H`` of entropies along a round.

    Args:
      entropy_rounds: ``(n_rounds, γ)`` entropies, each row one round's drafted positions in order
        (``γ ≥ 2``).
    Returns:
      ``rho_H`` (the pooled Pearson correlation of all ``(H_i, H_{i+1})`` pairs, clipped to
      ``[0, 1 − 1e-6]``, the range the scenario accepts), the unclipped ``rho_H_raw``, its
      approximate standard error ``(1 − r²)/√n_pairs`` (pairs within a row are dependent, so this
      understates it), ``n_lag_pairs``, and the lag-two correlation ``rho2_H`` (AR(1) predicts
      ``rho_H²``).
    """
    e = np.asarray(entropy_rounds, np.float64)
    if e.ndim != 2 or e.shape[1] < 2 or e.shape[0] < 1:
        raise ValueError(f"entropy_rounds must be a (rounds, gamma>=2) array, got shape {e.shape}")
    r = _lag_corr(e, 1)
    r2 = _lag_corr(e, 2) if e.shape[1] > 2 else float("nan")
    n = int(np.sum(np.isfinite(e[:, :-1]) & np.isfinite(e[:, 1:])))
    return {"rho_H": float(np.clip(r, 0.0, 1.0 - 1e-6)) if math.isfinite(r) else 0.0, "rho_H_raw": r,
            "rho_H_se": float((1 - r * r) / math.sqrt(n)), "rho2_H": r2, "n_lag_pairs": int(n)}


def fit_first_position_scale(entropy_rounds, k_H: float, theta_H: float, after_reject=None) -> dict[str, float]:
    r"""``after_reject_H_scale``: the ``Gamma(k_H, θ_r)`` scale of the first draft of rounds after a
    rejection by maximum likelihood with the shape fixed (``θ_r = mean(H_1)/k_H``), relative to
    ``θ_H``; its standard error from the Fisher information ``k n/θ²`` (``se(θ_r) = θ_r/√(k n)``).

    Args:
      entropy_rounds: ``(n_rounds, γ)`` entropies, column 0 the first drafted position.
      after_reject: ``(n_rounds,)`` bool, the round follows a rejection (default: all rounds).
    """
    e = np.asarray(entropy_rounds, np.float64)
    if e.ndim != 2:
        raise ValueError(f"entropy_rounds must be a (rounds, gamma) array, got shape {e.shape}")
    if after_reject is not None:
        e = e[np.asarray(after_reject, bool)]
    if e.shape[0] < 2:
        raise ValueError("fit_first_position_scale needs at least 2 rounds after a rejection")
    h1 = np.maximum(e[:, 0], 1e-6)
    theta1 = float(h1.mean() / k_H)
    se = theta1 / math.sqrt(k_H * h1.size)
    return {"after_reject_H_scale": theta1 / theta_H, "after_reject_H_scale_se": se / theta_H, "mean_H1": float(h1.mean()),
            "n_first": int(h1.size)}


def _lag_pairs(x, k):
    a, b = x[:, :-k].ravel(), x[:, k:].ravel()
    ok = np.isfinite(a) & np.isfinite(b)  # NaN pads rounds shorter than γ (structured CSV)
    return a[ok], b[ok]


def _lag_corr(x, k) -> float:
    a, b = _lag_pairs(x, k)
    return float(np.corrcoef(a, b)[0, 1]) if a.size >= 2 else float("nan")


def _jackknife_lag1(x, groups, n_blocks: int = 32) -> float:
    r"""Delete-one-block jackknife standard error of the lag-one Pearson correlation of the rows of
    ``x``, rows grouped by ``groups`` (e.g. the sequence of each round: rounds of one sequence are
    dependent through the text, different sequences are independent), groups merged into at most
    ``n_blocks`` blocks."""
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    nb = min(n_blocks, uniq.size)
    if nb < 2:
        return float("nan")
    block = inv % nb
    est = []
    for b in range(nb):
        est.append(_lag_corr(x[block != b], 1))
    est = np.asarray(est)
    return float(math.sqrt((nb - 1) / nb * np.sum((est - est.mean()) ** 2)))


def fit_text_correlation(entropy_rounds, k_H: float, theta_H: float, groups=None) -> dict[str, float]:
    r"""``rho_H`` of the ``entropy_process="text"`` surrogate: the pooled lag-one Pearson correlation
    of the normal scores ``z = Φ^{-1}(F(H; k_H, θ_H))`` of consecutive drafted positions of every
    round (``(n_rounds, γ ≥ 2)`` array), clipped to ``[0, 1 − 1e-6]``; also lags 2 and 3 (an AR(1)
    predicts ``rho^2``, ``rho^3``)."""
    e = np.asarray(entropy_rounds, np.float64)
    if e.ndim != 2 or e.shape[1] < 2 or e.shape[0] < 1:
        raise ValueError(f"entropy_rounds must be a (rounds, gamma>=2) array, got shape {e.shape}")
    u = stats.gamma.cdf(np.maximum(e, 1e-300), k_H, scale=theta_H)
    z = np.where(np.isfinite(e), stats.norm.ppf(np.clip(u, 1e-15, 1 - 1e-15)), np.nan)
    lag = lambda k: _lag_corr(z, k) if e.shape[1] > k else float("nan")
    r = lag(1)
    out = {"rho_text": float(np.clip(r, 0.0, 1.0 - 1e-6)) if math.isfinite(r) else 0.0, "rho_text_raw": r,
           "rho_text_lag2": lag(2), "rho_text_lag3": lag(3), "n_lag_pairs": int(_lag_pairs(z, 1)[0].size)}
    if groups is not None:
        out["rho_text_se"] = _jackknife_lag1(z, groups)
    return out


def _boundary_pairs(entropy_rounds, accepted_count, after_reject, round_sequence, round_index):
    r"""For every round that follows a rejection in the same sequence's previous round: the row of
    that previous round and the index of its rejected draft (``A``, 0-based). Rows whose previous
    round is not in the data, or ended without a rejection (e.g. an explicit ``after_reject`` flag
    set after an exit, whose exited position is not logged), are skipped. Returns ``(rows,
    prev_rows, prev_index)``."""
    e = np.asarray(entropy_rounds, np.float64)
    a = np.asarray(accepted_count).ravel().astype(np.int64)
    L = np.sum(np.isfinite(e), axis=1)
    seq, rnd = np.asarray(round_sequence).ravel(), np.asarray(round_index).ravel()
    where = {(int(q), int(t)): k for k, (q, t) in enumerate(zip(seq, rnd))}
    rows, prev, idx = [], [], []
    for k in np.flatnonzero(np.asarray(after_reject, bool)):
        j = where.get((int(seq[k]), int(rnd[k]) - 1))
        if j is None or a[j] >= L[j] or not np.isfinite(e[k, 0]):
            continue
        rows.append(k), prev.append(j), idx.append(int(a[j]))
    return np.asarray(rows, np.int64), np.asarray(prev, np.int64), np.asarray(idx, np.int64)


def _normal_scores(h, k_H, theta_H):
    u = stats.gamma.cdf(np.maximum(np.asarray(h, np.float64), 1e-300), k_H, scale=theta_H)
    return stats.norm.ppf(np.clip(u, 1e-15, 1 - 1e-15))


def _latent_regression(za, z1) -> tuple[float, float, float]:
    c = float(np.cov(za, z1, ddof=0)[0, 1] / np.var(za))
    mu = float(z1.mean() - c * za.mean())
    sd = float(np.sqrt(np.mean((z1 - mu - c * za) ** 2)))
    return mu, c, sd


def fit_after_reject_latent(entropy_rounds, accepted_count, after_reject, round_sequence, round_index,
                            k_H: float, theta_H: float, n_blocks: int = 32) -> dict[str, Any]:
    r"""``after_reject_latent = (mu, c, sigma)`` of the text process (``Scenario`` docstring): the
    Gaussian regression ``z_1 = mu + c·z_a + sigma·ε`` of the normal score ``z_1 = Φ^{-1}(F(H_1;
    k_H, θ_H))`` of the first draft of a round that follows a rejection on the normal score
    ``z_a`` of the rejected draft of the previous round (the latent the surrogate carries there,
    one text step earlier), by least squares (the maximum-likelihood fit of that conditional
    law); standard errors by the delete-one-block jackknife over sequences (``n_blocks``
    blocks). Also reported: the moments of ``z_1`` and ``H_1``, ``corr(z_a, z_1)``, and what the
    AR(1) with one ``rho_H`` would give (``c = rho_H``, ``sigma = sqrt(1 − rho_H²)``, ``mu = 0``)
    is for the caller to compare.

    Args:
      entropy_rounds: ``(n_rounds, γ)`` drafted entropies per round (NaN pads short rounds).
      accepted_count: ``(n_rounds,)`` (or ``(rounds, R)`` in row order) accepted drafts per round.
      after_reject: ``(n_rounds,)`` the round follows a rejection.
      round_sequence, round_index: ``(n_rounds,)`` sequence id and round number of each row.
    """
    e = np.asarray(entropy_rounds, np.float64)
    rows, prev, idx = _boundary_pairs(e, accepted_count, after_reject, round_sequence, round_index)
    if rows.size < 10:
        raise ValueError(f"fit_after_reject_latent needs at least 10 rounds after a rejection with their previous "
                         f"round logged, got {rows.size}")
    za = _normal_scores(e[prev, idx], k_H, theta_H)
    z1 = _normal_scores(e[rows, 0], k_H, theta_H)
    mu, c, sd = _latent_regression(za, z1)
    out: dict[str, Any] = {"after_reject_latent": (mu, c, sd), "n_boundary": int(rows.size),
                           "z1_mean": float(z1.mean()), "z1_std": float(z1.std()), "za_mean": float(za.mean()),
                           "corr_za_z1": float(np.corrcoef(za, z1)[0, 1]), "H1_mean": float(e[rows, 0].mean()),
                           "H1_std": float(e[rows, 0].std()), "Ha_mean": float(e[prev, idx].mean())}
    groups = np.asarray(round_sequence).ravel()[rows]
    uniq, inv = np.unique(groups, return_inverse=True)
    nb = min(n_blocks, uniq.size)
    if nb >= 2:
        est = np.asarray([_latent_regression(za[inv % nb != b], z1[inv % nb != b]) for b in range(nb)])
        se = np.sqrt((nb - 1) / nb * np.sum((est - est.mean(0)) ** 2, axis=0))
        out["after_reject_latent_se"] = tuple(float(x) for x in se)
    return out


def fit_payload_constant(entropy, support) -> dict[str, float]:
    r"""``c_p`` of ``m ≈ c_p e^H``: ``log c_p = mean(log m − H)``; also ``corr(log m, H)``."""
    h = np.asarray(entropy, np.float64)
    m = np.asarray(support, np.float64)
    logc = np.log(m) - h
    c = float(np.exp(logc.mean()))
    return {"c_p": c, "c_p_se": c * float(logc.std(ddof=1)) / math.sqrt(logc.size) if logc.size > 1 else float("nan"),
            "corr_logm_H": float(np.corrcoef(np.log(m), h)[0, 1])
            if h.std() > 0 and m.std() > 0 else float("nan"), "mean_support": float(m.mean())}


def calibration_toml(fit: dict[str, float], comment: str = "", entropy_process: str | None = None) -> str:
    """TOML snippet of the fitted scenario fields ``a0, a1, k_H, theta_H[, after_reject_H_scale]
    [, after_reject_a0_shift][, rho_H][, c_p][, after_reject_latent]``."""
    lines = [f"# {line}" for line in comment.splitlines()] + ["[scenario]"]
    if entropy_process is not None:
        lines.append(f'entropy_process = "{entropy_process}"')
    for name in ("a0", "a1", "k_H", "theta_H", "after_reject_H_scale", "after_reject_a0_shift", "rho_H", "c_p"):
        if name in fit and math.isfinite(fit[name]):
            lines.append(f"{name} = {fit[name]:.6g}")
    if fit.get("after_reject_latent") is not None:
        lines.append("after_reject_latent = [" + ", ".join(f"{v:.6g}" for v in fit["after_reject_latent"]) + "]")
    return "\n".join(lines) + "\n"


def _plot(path, bins, fit, entropy_all, default=(4.8, 1.8)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    hm = np.array([b["h_mean"] for b in bins])
    rate = np.array([b["rate"] for b in bins])
    err = np.array([[b["rate"] - b["ci_low"] for b in bins], [b["ci_high"] - b["rate"] for b in bins]])
    ax1.errorbar(hm, rate, yerr=err, fmt="o", capsize=3, label="binned (Wilson 95 %)")
    grid = np.linspace(0, max(float(np.max(entropy_all)), 1e-3), 200)
    later = " (positions ≥ 2)" if "after_reject_a0_shift" in fit else ""
    ax1.plot(grid, 1 / (1 + np.exp(-(fit["a0"] - fit["a1"] * grid))), label=f"fit σ({fit['a0']:.2f} − {fit['a1']:.2f} H){later}")
    if "after_reject_a0_shift" in fit:
        a0_1 = fit["a0"] + fit["after_reject_a0_shift"]
        ax1.plot(grid, 1 / (1 + np.exp(-(a0_1 - fit["a1"] * grid))), ":", label=f"fit at position 1: σ({a0_1:.2f} − {fit['a1']:.2f} H)")
    ax1.plot(grid, 1 / (1 + np.exp(-(default[0] - default[1] * grid))), "--", label="default σ(4.8 − 1.8 H)")
    ax1.set(xlabel="draft entropy H (nats)", ylabel="acceptance probability", ylim=(0, 1.02),
            title="reliability of α(H)")
    ax1.legend(fontsize=8)
    ax2.hist(entropy_all, bins=50, density=True, alpha=0.6, label="drafted positions")
    ax2.plot(grid, stats.gamma.pdf(grid, fit["k_H"], scale=fit["theta_H"]),
             label=f"Gamma({fit['k_H']:.2f}, {fit['theta_H']:.2f})")
    ax2.set(xlabel="draft entropy H (nats)", ylabel="density", title="entropy law")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def run_calibration(*, csv: str | None = None, out_dir: str | os.PathLike = "runs/calibration", rounds: int = 100,
                    sequences: int = 64, gamma_max: int = 10, top_p: float = 0.95, seed: int = 0,
                    weights_dir: str | None = None, quiet: bool = False, n_bins: int = 10,
                    write_rho: bool = False, positional: bool = True, entropy_process: str = "text",
                    export_csv: str | os.PathLike | None = None) -> dict[str, Any]:
    """Collect or read pairs, fit, and write ``calibration.toml``, ``reliability.png``,
    ``calibration.json`` (and ``pairs.csv`` in LM mode) into ``out_dir``.  ``rho_H`` goes into the
    TOML only with ``write_rho`` and ``entropy_process="round"``; with ``"text"`` (LM mode) the
    text-process correlation is written as ``rho_H`` (module docstring).  ``positional`` fits the first-drafted-position
    law where the data allow it (LM mode; a structured CSV).  ``export_csv``: also write LM mode's
    (or the structured CSV's) pairs in the structured schema (:func:`write_structured_csv`).

    The result lists under ``not_estimated`` every calibrated field the data cannot determine, with
    the reason and the value the scenario keeps (the ``Scenario`` default), and under
    ``warnings`` a small-sample warning (fewer than :data:`SMALL_SAMPLE` verified pairs) that
    quotes the standard errors."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if entropy_process not in ("text", "round"):
        raise ValueError(f"entropy_process must be 'text' or 'round', got {entropy_process!r}")
    if write_rho and entropy_process == "text":
        raise ValueError("write_rho writes the within-round AR(1) rho_H of entropy_process='round'; "
                         "with 'text' rho_H is the text-process correlation (always written)")
    out_dir = Path(out_dir)
    if csv is not None:
        data = read_pairs_csv(csv)
        source = f"csv {csv}"
    else:
        from .rounds import LMPair

        pair = LMPair.load(weights_dir)
        data = collect_pairs(pair, rounds=rounds, sequences=sequences, gamma_max=gamma_max, top_p=top_p,
                             seed=seed, quiet=quiet)
        source = f"LM mode: {rounds} rounds x {sequences} sequences, gamma_max={gamma_max}, top_p={top_p}, seed={seed}"
    h, y = data["entropy"], data["accepted"]
    requested_positional = bool(positional)
    positional = bool(positional) and "after_reject" in data
    first = data["after_reject"] if positional else None
    if positional and (first.all() or not first.any()):
        positional, first = False, None  # nothing to contrast (e.g. a CSV of first positions only)
    pooled = fit_acceptance(h, y)
    fit = fit_acceptance(h, y, first) if positional else dict(pooled)
    fit["pooled_a0"], fit["pooled_a1"] = pooled["a0"], pooled["a1"]
    if positional and "entropy_rounds" in data:
        # later positions give the stationary law, column 0 the first position's scale
        fit.update(fit_entropy_law(data["entropy_rounds"][:, 1:].ravel()))
        fit.update(fit_first_position_scale(data["entropy_rounds"], fit["k_H"], fit["theta_H"],
                                            data.get("rounds_after_reject")))
    else:
        fit.update(fit_entropy_law(data["all_entropy"]))  # all drafted positions (module docstring)
    if "entropy_rounds" in data:
        fit.update(fit_entropy_correlation(data["entropy_rounds"]))
    if "support" in data:
        fit.update(fit_payload_constant(data["all_entropy"], data["all_support"]))
    if "round_sequence" in data and export_csv is not None:
        res_export = write_structured_csv(export_csv, data)
    else:
        res_export = None
    # surrogate check (§4/§5): ᾱ = E[σ(a0 − a1 H)] under the fitted Gamma law, by quadrature
    from scipy import integrate, special

    fit["surrogate_mean_acceptance"] = float(integrate.quad(
        lambda x: stats.gamma.pdf(x, fit["k_H"], scale=fit["theta_H"]) * special.expit(fit["a0"] - fit["a1"] * x),
        0, np.inf)[0])
    shift = fit.get("after_reject_a0_shift", 0.0) * (first if first is not None else 0.0)
    per_pair = special.expit(fit["a0"] + shift - fit["a1"] * np.asarray(h, np.float64))
    bins = binned_acceptance(h, y, n_bins, predicted=per_pair)
    pred = [b["fitted"] for b in bins]
    covered = sum(b["ci_low"] <= a <= b["ci_high"] for b, a in zip(bins, pred))
    res: dict[str, Any] = {
        "source": source,
        "n_pairs": int(h.size),
        "mean_acceptance": float(y.mean()),
        "corr_entropy_accepted": float(np.corrcoef(h, y.astype(np.float64))[0, 1]),
        "fit": fit,
        "bins": [dict(b, fitted=a) for b, a in zip(bins, pred)],
        "bins_covering_fit": f"{covered}/{len(bins)}",
    }
    if positional:
        # the diagnostic behind the positional fit: acceptance of the first draft after a rejection
        # against the pooled map
        n1 = int(first.sum())
        rate1 = float(y[first].mean())
        res["after_reject"] = {
            "n": n1, "acceptance": rate1, "se": math.sqrt(rate1 * (1 - rate1) / n1),
            "pooled_map_prediction": float(special.expit(pooled["a0"] - pooled["a1"] * h[first]).mean()),
            "positional_map_prediction": float(per_pair[first].mean()),
            "mean_entropy": float(h[first].mean()), "mean_entropy_later": float(h[~first].mean()),
        }
        a0_1 = fit["a0"] + fit["after_reject_a0_shift"]
        th1 = fit["theta_H"] * fit.get("after_reject_H_scale", 1.0)
        fit["surrogate_first_acceptance"] = float(integrate.quad(
            lambda x: stats.gamma.pdf(x, fit["k_H"], scale=th1) * special.expit(a0_1 - fit["a1"] * x), 0, np.inf)[0])
    if "accepted_count" in data:
        res["mean_accepted_per_round"] = float(np.mean(data["accepted_count"]))
    if csv is None:
        write_pairs_csv(out_dir / "pairs.csv", h, y, data.get("support"), data.get("after_reject"))
    res["toml"] = str(out_dir / "calibration.toml")
    res["plot"] = str(out_dir / "reliability.png")
    comment = (f"gelato calibrate: {source}\nn_pairs={res['n_pairs']} mean_acceptance={res['mean_acceptance']:.4f} "
               f"corr(H, accepted)={res['corr_entropy_accepted']:.4f}"
               + (f"\nentropy law over {'positions 2.. of ' if 'after_reject_H_scale' in fit else ''}all "
                  f"{data['all_entropy'].size} drafted positions; lag-one corr along a round "
                  f"{fit['rho_H_raw']:.4f} (lag two {fit['rho2_H']:.4f})" if "rho_H_raw" in fit else "")
               + (f"\nfirst draft after a rejection: acceptance {res['after_reject']['acceptance']:.4f} "
                  f"(n={res['after_reject']['n']}; pooled map predicts {res['after_reject']['pooled_map_prediction']:.4f}), "
                  f"mean entropy {res['after_reject']['mean_entropy']:.3f} vs {res['after_reject']['mean_entropy_later']:.3f} "
                  "later (verified pairs)" if "after_reject" in res else ""))
    text = entropy_process == "text" and "entropy_rounds" in data
    if text:
        fit.update(fit_text_correlation(data["entropy_rounds"], fit["k_H"], fit["theta_H"],
                                        data.get("round_sequence")))
        toml_fit = dict({k: v for k, v in fit.items() if k != "rho_H"}, rho_H=fit["rho_text"])
        comment += (f"\nentropy_process = text: rho_H = lag-one corr of the normal scores {fit['rho_text_raw']:.4f} "
                    f"(lags 2, 3: {fit['rho_text_lag2']:.3f}, {fit['rho_text_lag3']:.3f})")
        if positional and "accepted_count" in data and "round_index" in data:
            # the first draft after a rejection: its latent regression on the rejected position's, fitted
            # jointly with the carry-over; it replaces after_reject_H_scale (which would count it twice)
            try:
                lat = fit_after_reject_latent(data["entropy_rounds"], data["accepted_count"],
                                              data["rounds_after_reject"], data["round_sequence"],
                                              data["round_index"], fit["k_H"], fit["theta_H"])
            except ValueError as e:
                res["after_reject_latent_error"] = str(e)
            else:
                fit.update(lat)
                toml_fit = {k: v for k, v in toml_fit.items() if k != "after_reject_H_scale"}
                toml_fit["after_reject_latent"] = lat["after_reject_latent"]
                mu, c, sd = lat["after_reject_latent"]
                comment += (f"\nafter a rejection: latent z_1 = {mu:.3f} + {c:.3f} z_a + {sd:.3f} eps "
                            f"(n = {lat['n_boundary']}; corr(z_a, z_1) = {lat['corr_za_z1']:.3f}, sd(z_1) = "
                            f"{lat['z1_std']:.3f}); after_reject_H_scale kept at 1 (raw first-position ratio "
                            f"{fit.get('after_reject_H_scale', float('nan')):.4f} contains the carry-over)")
    else:
        toml_fit = fit if write_rho else {k: v for k, v in fit.items() if k != "rho_H"}
        if "rho_H_raw" in fit and not write_rho:
            comment += "\nrho_H not written (use --write-rho; see gelato_jax/lm/calibrate.py)"
    res["entropy_process"] = "text" if text else "round"
    res["not_estimated"] = _not_estimated(data, fit, positional, requested_positional, text, write_rho)
    res["warnings"] = _small_sample_warnings(res["n_pairs"], fit, text)
    if res_export is not None:
        res["export_csv"] = {"path": str(export_csv), "rows": res_export}
    for name, v in res["not_estimated"].items():
        comment += f"\n{name} not estimated ({v['reason']}); the scenario keeps {name} = {v['kept']!r}"
    for w in res["warnings"]:
        comment += f"\nwarning: {w}"
    atomic_write_bytes(res["toml"], calibration_toml(toml_fit, comment, "text" if text else None).encode())
    _plot(res["plot"], bins, fit, data["all_entropy"])
    atomic_write_json(out_dir / "calibration.json", res)
    return res


SMALL_SAMPLE = 1000  # verified pairs below which a fit is flagged as a small sample


def _not_estimated(data, fit, positional, requested, text, write_rho) -> dict[str, dict[str, Any]]:
    """Calibrated fields the data could not determine: reason and the value kept (Scenario default)."""
    from ..scenario import Scenario

    d = Scenario()
    out: dict[str, dict[str, Any]] = {}
    structured = "entropy_rounds" in data
    if "support" not in data:
        out["c_p"] = {"reason": "no support column (top-p set sizes)", "kept": d.c_p}
    if not structured:
        out["rho_H"] = {"reason": "no round structure (flat CSV; the structured schema sequence, round, position "
                                  "gives it)", "kept": d.rho_H}
        out["entropy_process"] = {"reason": "no round structure", "kept": d.entropy_process}
    elif not text and not write_rho:
        out["rho_H"] = {"reason": "entropy_process='round' without --write-rho", "kept": d.rho_H}
    if not positional:
        why = ("--pooled (one acceptance map for all positions)" if not requested
               else "no after_reject column and no round structure to derive it" if "after_reject" not in data
               else "every pair has the same after-rejection flag (nothing to contrast)")
        out["after_reject_a0_shift"] = {"reason": why, "kept": d.after_reject_a0_shift}
    if "after_reject_H_scale" not in fit and not (text and "after_reject_latent" in fit):
        out["after_reject_H_scale"] = {"reason": "needs every drafted entropy of each round (LM mode or the structured "
                                                 "schema) and the after-rejection contrast", "kept": d.after_reject_H_scale}
    if text and "after_reject_latent" not in fit:
        out["after_reject_latent"] = {"reason": "needs rounds after a rejection whose previous round is logged "
                                                "(and the positional fit)", "kept": d.after_reject_latent}
    return out


def _small_sample_warnings(n_pairs: int, fit, text) -> list[str]:
    if n_pairs >= SMALL_SAMPLE:
        return []
    ses = [f"a0 = {fit['a0']:.4g} ± {fit['a0_se']:.2g}", f"a1 = {fit['a1']:.4g} ± {fit['a1_se']:.2g}",
           f"k_H = {fit['k_H']:.4g} ± {fit['k_H_se']:.2g}", f"theta_H = {fit['theta_H']:.4g} ± {fit['theta_H_se']:.2g}"]
    if "c_p" in fit:
        ses.append(f"c_p = {fit['c_p']:.4g} ± {fit['c_p_se']:.2g}")
    if "after_reject_a0_shift" in fit:
        ses.append(f"after_reject_a0_shift = {fit['after_reject_a0_shift']:.4g} ± {fit['after_reject_a0_shift_se']:.2g}")
    if text and "rho_text_se" in fit:
        ses.append(f"rho_H = {fit['rho_text']:.4g} ± {fit['rho_text_se']:.2g}")
    return [f"small sample: {n_pairs} verified pairs (< {SMALL_SAMPLE}); the fit is uncertain — standard errors: "
            + ", ".join(ses)]


def validate_calibration(toml_path, *, seed: int = 0, lm_realizations: int = 32, lm_rounds: int = 100,
                         surrogate_realizations: int = 256, surrogate_rounds: int | None = None,
                         weights_dir: str | None = None, out_dir: str | os.PathLike | None = None,
                         policies=None, quiet: bool = False, pair=None) -> list[dict[str, Any]]:
    r"""Does the calibrated surrogate reproduce LM mode? Runs each policy both ways on the scenario
    ``calibrated_scenario(toml_path)`` (same seed, so the channel draws of the first
    ``lm_realizations`` realizations are shared) and compares the per-realization means of
    accepted drafts, sent drafts, throughput ``E[N/D]`` and energy by a two-sample z statistic
    (standard errors over independent realizations). ``within`` is ``|z| ≤ 3.29`` (two-sided
    false-failure rate 1e-3 per comparison when the two agree). Writes ``validation.json`` and
    ``validation.md`` into ``out_dir`` if given.

    ``surrogate_rounds`` defaults to ``lm_rounds``: both sides then average the same horizon (a
    policy whose state has a transient — AdaEDL's adapted threshold, the virtual queue — has
    different per-realization means at 200 and at 2000 rounds, so comparing different horizons
    tests the transient, not the surrogate; measured in docs/lm_validation_kv.md).

    Default policies: ``Gelato(exit="none")``, ``Gelato(exit="bucket")``, ``StaticSD(4, "topp")``.
    ``pair``: an ``LMPair`` to use instead of loading ``weights_dir``.
    """
    surrogate_rounds = lm_rounds if surrogate_rounds is None else surrogate_rounds
    from ..policies import Gelato, StaticSD
    from ..simulator import simulate
    from .rounds import LMPair
    from .simulate import calibrated_scenario, simulate_lm

    scen = calibrated_scenario(toml_path)
    if policies is None:
        policies = [Gelato(exit="none"), Gelato(exit="bucket"), StaticSD(gamma=4, payload="topp")]
    pair = pair if pair is not None else LMPair.load(weights_dir)
    rows: list[dict[str, Any]] = []
    for pol in policies:
        # a short label: Gelato's repr is long, its exit is what differs here
        label = (f"{type(pol).__name__}(exit={pol.exit!r})" if hasattr(pol, "exit")
                 else f"StaticSD(gamma={pol.gamma}, payload={pol.payload!r})" if type(pol).__name__ == "StaticSD"
                 else type(pol).__name__ if type(pol).__name__ == "AdaEDL" and pol == type(pol)() else repr(pol))
        lm = simulate_lm(scen, pol, seed=seed, realizations=lm_realizations, rounds=lm_rounds, pair=pair,
                         progress=None if not quiet else False)
        su = simulate(scen, pol, seed=seed, realizations=surrogate_realizations, rounds=surrogate_rounds)
        for k in ("accepted", "sent", "throughput", "energy"):
            x, y = np.asarray(getattr(lm, k), np.float64), np.asarray(getattr(su, k), np.float64)
            sx, sy = x.std(ddof=1) / math.sqrt(x.size), y.std(ddof=1) / math.sqrt(y.size)
            se = math.hypot(sx, sy)
            z = (y.mean() - x.mean()) / se if se > 0 else (0.0 if y.mean() == x.mean() else math.inf)
            rows.append({"policy": label, "metric": k, "lm": float(x.mean()), "lm_se": float(sx),
                         "surrogate": float(y.mean()), "surrogate_se": float(sy), "z": float(z),
                         "within": bool(abs(z) <= 3.29)})
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "validation.json", {
            "calibration": str(toml_path), "seed": seed, "lm": f"{lm_realizations} x {lm_rounds}",
            "surrogate": f"{surrogate_realizations} x {surrogate_rounds}", "rows": rows})
        lines = [f"# Calibrated surrogate vs LM mode ({toml_path})", "",
                 f"LM mode {lm_realizations} × {lm_rounds} rounds, surrogate {surrogate_realizations} × "
                 f"{surrogate_rounds}, seed {seed}; z = (surrogate − LM)/s.e.; |z| ≤ 3.29 is agreement at "
                 "false-failure rate 1e-3 per row.", "",
                 "| policy | metric | LM | surrogate | z | agree |", "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['policy']} | {r['metric']} | {r['lm']:.4g} ± {r['lm_se']:.2g} | "
                         f"{r['surrogate']:.4g} ± {r['surrogate_se']:.2g} | {r['z']:+.2f} | {'yes' if r['within'] else 'NO'} |")
        atomic_write_bytes(out_dir / "validation.md", ("\n".join(lines) + "\n").encode())
    return rows


def _acceptance_probs(fit, h, first):
    from scipy import special

    shift = fit.get("after_reject_a0_shift", 0.0) * np.asarray(first, np.float64)
    return special.expit(fit["a0"] + shift - fit["a1"] * np.asarray(h, np.float64))


def validate_csv_calibration(csv_path, *, out_dir: str | os.PathLike | None = None, n_bins: int = 10,
                             positional: bool = True) -> list[dict[str, Any]]:
    r"""Validate a calibration against the CSV's *own* pairs, out of sample (``gelato calibrate --csv F
    --validate``; LM mode is not involved).

    The log is split in two halves — by sequence (alternate sequence ids) in the structured
    schema, by alternate rows in the flat one; the acceptance map is fitted on the first half
    (:func:`fit_acceptance`, with the after-rejection shift where the data allow it) and checked on
    the second:

    * **mean acceptance**: logged accepted drafts vs ``Σ α(H_i)`` over the held-out verified pairs,
      ``z = (obs − pred)/√Σ α(1 − α)``;
    * **reliability**: ``n_bins`` equal-count bins of ``H``; per bin ``z`` as above and the
      Hosmer–Lemeshow statistic ``Σ (O − E)²/(E(1 − E/n))`` against ``χ²(n_bins)`` (out of sample,
      so no degrees of freedom are spent on the fit); agreement at ``p > 1e-3``;
    * structured schema only, **accepted drafts per round**: the logged ``A`` of each held-out
      round vs its law under the fitted map given the round's logged entropies,
      ``P(A ≥ i) = Π_{l ≤ i} α(H_l)``, ``E[A] = Σ_i P(A ≥ i)``, ``Var[A] = Σ_i (2i − 1) P(A ≥ i) − E[A]²``.

    Rows ``within`` ``|z| ≤ 3.29`` (false-failure rate 1e-3 each if the map is right).  Writes
    ``validation.json`` / ``validation.md`` into ``out_dir`` when given.
    """
    data = read_pairs_csv(csv_path)
    h, y = data["entropy"], data["accepted"]
    first = data.get("after_reject", np.zeros(h.shape, bool))
    structured = "entropy_rounds" in data
    if structured:
        seq_ids = np.unique(data["round_sequence"])
        held_seq = set(seq_ids[1::2].tolist())
        if not held_seq:
            raise ValueError(f"{csv_path}: the held-out check needs at least 2 sequences")
        round_held = np.asarray([int(q) in held_seq for q in data["round_sequence"]])
        # verified pairs in round order: map each to its round row
        e_r = data["entropy_rounds"]
        a_r = np.asarray(data["accepted_count"])
        L_r = np.sum(np.isfinite(e_r), axis=1)
        nver = np.minimum(a_r + 1, L_r)
        held = np.repeat(round_held, nver)
    else:
        held = (np.arange(h.size) % 2) == 1
    if held.all() or not held.any() or held.sum() < 2 or (~held).sum() < 2:
        raise ValueError(f"{csv_path}: too few pairs to split into a fitting and a held-out half")
    use_first = positional and first[~held].any() and not first[~held].all()
    fit = fit_acceptance(h[~held], y[~held], first[~held] if use_first else None)
    ph = _acceptance_probs(fit, h[held], first[held] if use_first else np.zeros(int(held.sum()), bool))
    yh = y[held].astype(np.float64)
    rows: list[dict[str, Any]] = []

    def zrow(check, obs, pred, var, n):
        z = (obs - pred) / math.sqrt(var) if var > 0 else 0.0
        rows.append({"check": check, "n": int(n), "observed": float(obs), "predicted": float(pred),
                     "z": float(z), "within": bool(abs(z) <= 3.29)})

    zrow("mean acceptance (held-out verified pairs)", yh.mean(), ph.mean(),
         float(np.sum(ph * (1 - ph))) / yh.size ** 2, yh.size)
    order = np.argsort(h[held], kind="stable")
    hl = 0.0
    for k, idx in enumerate(np.array_split(order, n_bins)):
        if idx.size == 0:
            continue
        o, e = yh[idx].sum(), ph[idx].sum()
        v = float(np.sum(ph[idx] * (1 - ph[idx])))
        hl += (o - e) ** 2 / v if v > 0 else 0.0
        hb = h[held][idx]
        zrow(f"reliability bin {k + 1}: H in [{hb.min():.3g}, {hb.max():.3g}]", o / idx.size, e / idx.size,
             v / idx.size ** 2, idx.size)
    p_hl = float(stats.chi2.sf(hl, n_bins))
    rows.append({"check": f"Hosmer-Lemeshow over {n_bins} bins (chi2({n_bins}))", "n": int(yh.size),
                 "observed": float(hl), "predicted": float(n_bins), "z": float("nan"), "p": p_hl,
                 "within": bool(p_hl > 1e-3)})
    if structured:
        idx_r = np.flatnonzero(round_held)
        ea, va, oa = 0.0, 0.0, 0.0
        for k in idx_r:
            L = int(L_r[k])
            f1 = np.zeros(L, bool)
            f1[0] = bool(data["rounds_after_reject"][k]) and use_first
            alpha = _acceptance_probs(fit, e_r[k, :L], f1)
            surv = np.cumprod(alpha)  # P(A ≥ i), i = 1..L
            m1 = surv.sum()
            ea += m1
            va += float(np.sum((2 * np.arange(1, L + 1) - 1) * surv) - m1 ** 2)
            oa += a_r[k]
        n = idx_r.size
        zrow("accepted drafts per round (held-out rounds, given their logged entropies)", oa / n, ea / n,
             va / n ** 2, n)
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "validation.json", {"csv": str(csv_path), "fit_on_first_half": fit,
                                                         "split": "by sequence" if structured else "alternate rows",
                                                         "rows": rows})
        lines = [f"# Calibration vs the CSV's own held-out pairs ({csv_path})", "",
                 f"Acceptance map fitted on half of the log ({'alternate sequences' if structured else 'alternate rows'}),"
                 " checked on the other half; |z| ≤ 3.29 (and Hosmer–Lemeshow p > 1e-3) is agreement at false-failure "
                 "rate 1e-3 per row.", "", "| check | n | observed | predicted | z | agree |", "|---|---|---|---|---|---|"]
        for r in rows:
            zs = f"p = {r['p']:.3g}" if "p" in r else f"{r['z']:+.2f}"
            lines.append(f"| {r['check']} | {r['n']} | {r['observed']:.4g} | {r['predicted']:.4g} | {zs} | "
                         f"{'yes' if r['within'] else 'NO'} |")
        atomic_write_bytes(out_dir / "validation.md", ("\n".join(lines) + "\n").encode())
    return rows
