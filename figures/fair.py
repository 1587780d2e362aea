r"""Equal-energy comparisons (``gelato headline --fair``, ``docs/headline_fair.md``).

The default baselines spend more energy than GELATO's budget ``Ē`` (static SD uploads the full
draft distribution, ≈ 2.4 Mbit per token at ``V_vocab = 151,936``; DSSD's downlink distribution
after each rejection costs airtime, its drafts energy), so "GELATO vs baseline" at the defaults
mixes a throughput gain with an energy saving. Two framings at equal energy, each on common
random numbers (same seed, same realization keys; ``Ē`` does not change the draws):

1. **Baseline at the γ that meets Ē.** Each fixed-γ baseline (static SD with the ``full`` and
   with the ``topp`` payload, DSSD) runs at every ``γ = 1..γ_max``; the γ with the highest
   throughput among those whose measured energy per round is ``≤ Ē`` is compared with GELATO
   at ``Ē`` (none meets ``Ē``: said so).
2. **GELATO at the baseline's energy.** GELATO runs with ``Ē`` set to the energy per round the
   baseline measured at its default ``γ = 4`` and is compared with that baseline.

Changes are ``100 (GELATO/baseline − 1)`` % with paired 95 % delta-method CIs over realizations
(``gelato_jax.compare.ratio_change``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

__all__ = ["BASELINES", "pick_gamma", "run_fair", "render_fair", "run"]

# label -> (registry name, fields, words)
BASELINES = {
    "static-full": ("static", {"payload": "full"}, "Static SD, full payload"),
    "static-topp": ("static", {"payload": "topp"}, "Static SD, top-p payload"),
    "dssd": ("dssd", {}, "DSSD, scalar uplink"),
}
DEFAULT_GAMMA = 4


def pick_gamma(energy: dict[int, float], throughput: dict[int, float], e_bar: float) -> int | None:
    """The γ with the highest throughput among those whose energy per round is ``≤ e_bar``
    (``None`` when no γ meets the budget; ties: the smaller γ)."""
    meeting = sorted(g for g in energy if energy[g] <= e_bar)
    return max(meeting, key=lambda g: throughput[g]) if meeting else None


def run_fair(scenario, *, seed: int, realizations: int, rounds: int, V: float, log=lambda *_: None) -> dict[str, Any]:
    """Both framings at ``scenario``; returns a JSON-ready record (means, CIs, paired changes)."""
    from gelato_jax import policies as P
    from gelato_jax.compare import compare, ratio_change

    e_bar = float(scenario.E_bar)
    pols = {"gelato": P.Gelato(V=V)}
    for lab, (name, kw, _) in BASELINES.items():
        for g in range(1, scenario.gamma_max + 1):
            pols[f"{lab}-g{g}"] = P.REGISTRY[name](gamma=g, **kw)
    cmp = compare(scenario, pols, seed=seed, realizations=realizations, rounds=rounds)
    summ = cmp.summary()
    m = cmp.metrics
    gel = m["gelato"]
    rows = []
    for lab, (_name, _kw, words) in BASELINES.items():
        gammas = range(1, scenario.gamma_max + 1)
        energy = {g: summ[f"{lab}-g{g}"]["energy"]["mean"] for g in gammas}
        gb = pick_gamma(energy, {g: summ[f"{lab}-g{g}"]["throughput"]["mean"] for g in gammas}, e_bar)
        row: dict[str, Any] = {"baseline": lab, "words": words, "energy_by_gamma": energy}
        if gb is not None:
            b = m[f"{lab}-g{gb}"]
            row["at_budget"] = {
                "gamma": gb, "baseline_energy": energy[gb], "gelato_energy": summ["gelato"]["energy"]["mean"],
                "baseline_throughput": summ[f"{lab}-g{gb}"]["throughput"]["mean"],
                "gelato_throughput": summ["gelato"]["throughput"]["mean"],
                "throughput": ratio_change(gel["throughput"], b["throughput"]),
                "goodput": ratio_change(gel["goodput"], b["goodput"]),
            }
        else:
            row["at_budget"] = None
        e4 = energy[DEFAULT_GAMMA]
        log(f"  fair: GELATO at {lab}'s energy {e4:.4g} J/round")
        g4 = compare(scenario.replace(E_bar=e4), {"gelato": P.Gelato(V=V)}, seed=seed, realizations=realizations,
                     rounds=rounds)
        b4 = m[f"{lab}-g{DEFAULT_GAMMA}"]
        row["at_baseline_energy"] = {
            "gamma": DEFAULT_GAMMA, "baseline_energy": e4, "gelato_energy": float(np.mean(g4.metrics["gelato"]["energy"])),
            "baseline_throughput": summ[f"{lab}-g{DEFAULT_GAMMA}"]["throughput"]["mean"],
            "gelato_throughput": float(np.mean(g4.metrics["gelato"]["throughput"])),
            "throughput": ratio_change(g4.metrics["gelato"]["throughput"], b4["throughput"]),
            "goodput": ratio_change(g4.metrics["gelato"]["goodput"], b4["goodput"]),
        }
        rows.append(row)
    return {"scenario": scenario.to_dict(), "E_bar": e_bar, "V": V, "seed": seed, "realizations": realizations,
            "rounds": rounds, "rows": rows}


def _pct(s) -> str:
    import math

    if not all(math.isfinite(s[k]) for k in ("mean", "ci_low", "ci_high")):
        return "n/a"
    return f"{s['mean']:+.1f} % [{s['ci_low']:+.1f}, {s['ci_high']:+.1f}]"


def render_fair(records: dict[str, tuple[str, dict]], command: str) -> str:
    """Markdown from ``{key: (title, record)}``."""
    first = next(iter(records.values()))[1]
    lines = [
        "# Equal-energy comparisons: GELATO vs fixed-γ baselines",
        "",
        f"Generated by `{command}` (seed {first['seed']}, {first['realizations']} realizations × {first['rounds']} "
        f"rounds per policy, common random numbers, GELATO V = {first['V']}). Changes are "
        "`100·(GELATO/baseline − 1)` with paired 95 % CIs. *At Ē*: the baseline at the γ (1–γ_max) with the "
        "highest throughput among those whose measured energy per round is ≤ Ē, against GELATO at Ē. "
        f"*At the baseline's energy*: the baseline at its default γ = {DEFAULT_GAMMA}, against GELATO with Ē set "
        "to that baseline's measured energy per round. Throughput = mean per-round `N/D`; goodput = `ΣN/ΣD`.",
        "",
    ]
    for _key, (title, rec) in records.items():
        lines += [f"## {title} (Ē = {rec['E_bar']} J/round)", "",
                  "| baseline | framing | baseline γ | baseline energy (J/round) | GELATO energy (J/round) | "
                  "baseline / GELATO throughput (tok/s) | GELATO vs baseline: throughput | goodput |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for row in rec["rows"]:
            a = row["at_budget"]
            if a is None:
                lo = min(row["energy_by_gamma"].values())
                lines.append(f"| {row['words']} | at Ē | none meets Ē (γ = 1 spends {lo:.4f} J) | | | | | |")
            else:
                lines.append(f"| {row['words']} | at Ē | {a['gamma']} | {a['baseline_energy']:.4f} | {a['gelato_energy']:.4f} | "
                             f"{a['baseline_throughput']:.2f} / {a['gelato_throughput']:.2f} | {_pct(a['throughput'])} | "
                             f"{_pct(a['goodput'])} |")
            b = row["at_baseline_energy"]
            lines.append(f"| {row['words']} | at the baseline's energy | {b['gamma']} | {b['baseline_energy']:.4f} | "
                         f"{b['gelato_energy']:.4f} | {b['baseline_throughput']:.2f} / {b['gelato_throughput']:.2f} | "
                         f"{_pct(b['throughput'])} | {_pct(b['goodput'])} |")
        lines.append("")
    return "\n".join(lines)


def run(*, out_md: str, results_dir: str, quick: bool, seed: int, draw_only: bool, quiet: bool) -> str:
    """Compute (or, ``draw_only``, read) both framings at the headline's operating points."""
    import json
    import sys

    from gelato_jax import Scenario
    from gelato_jax import io as gio

    from .headline import SCENARIOS
    from .runner import GELATO_V

    R, T = (16, 1000) if quick else (64, 3000)
    records = {}
    for key, (title, fields) in SCENARIOS.items():
        path = os.path.join(results_dir, f"fair_{key}.json")
        if draw_only:
            if not os.path.isfile(path):
                raise ValueError(f"no saved result {path!r}: run `gelato headline --fair` without --draw-only first")
            with open(path) as fh:
                records[key] = (title, json.load(fh))
            continue
        log = (lambda *_: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
        log(f"headline --fair: {key} ({R} x {T})")
        t0 = time.time()
        rec = run_fair(Scenario(**fields), seed=seed, realizations=R, rounds=T, V=GELATO_V, log=log)
        rec["wall_time_s"] = time.time() - t0
        gio.save_json(path, {**rec, "environment": gio.environment_info()})
        records[key] = (title, rec)
    command = f"gelato headline --fair{' --quick' if quick else ''}"
    if draw_only:
        first = next(iter(records.values()))[1]
        command = f"gelato headline --fair{' --quick' if first['realizations'] < 64 else ''}"
    text = render_fair(records, command)
    gio.atomic_write_bytes(out_md, text.encode())
    return text
