"""README's test command is exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_readme_test_command():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1 : readme.index("```bash") + 3]
    assert block[0].endswith("gelato simulate") or "gelato verify" in block[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1] in ci


def _model_sections():
    """``{N: text of section N}`` of docs/model.md (``## N. Title`` headings)."""
    import re

    text = (ROOT / "docs" / "model.md").read_text()
    parts = re.split(r"^## (\d+)\. ", text, flags=re.M)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}


def test_every_model_reference_resolves_to_a_section_of_docs_model_md():
    """'docs/model.md §N[.M]', 'MODEL.md §N[.M]' and 'MODEL §N[.M]' anywhere in the repository
    name a section ``## N.`` of docs/model.md and, with ``.M``, item ``M.`` of its list."""
    import re
    import subprocess

    sections = _model_sections()
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    pat = re.compile(r"(?:docs/model\.md|MODEL(?:\.md)?)\s*§\s*(\d+)(?:\.(\d+))?|§(\d+)(?:\.(\d+))? of (?:docs/model\.md|MODEL\.md)")
    seen, bad = 0, []
    for f in files:
        path = ROOT / f
        if path.suffix not in (".py", ".md", ".toml", ".txt", ".json") or not path.is_file():
            continue
        for m in pat.finditer(path.read_text(errors="replace")):
            n, sub = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            seen += 1
            body = sections.get(int(n))
            if body is None or (sub and not re.search(rf"^{int(sub)}\. ", body, re.M)):
                bad.append(f"{f}: {m.group(0)}")
    assert seen > 100  # the scan found the references (there are hundreds)
    assert not bad, bad


def test_model_md_section_9_correction_mean_proxy_peak_is_gamma_3():
    """docs/model.md §9 and its correction: the mean-proxy throughput at the mean channel
    (h = 1) peaks at γ = 3, ≈ 32.6 tok/s, not γ = 4 (≈ 36). Recomputed here from the formulas of
    §2–§5 in float64 with scipy (independent of the package's JAX code), at Scenario()'s values."""
    import math

    import numpy as np
    from scipy import integrate, special, stats

    from gelato_jax import Scenario

    s = Scenario()
    H = stats.gamma(s.k_H, scale=s.theta_H)
    a_bar = integrate.quad(lambda h: H.pdf(h) * special.expit(s.a0 - s.a1 * h), 0, np.inf, limit=200)[0]
    # E[m(H)] = Σ_{j<M} P(c_p e^H > j), M = min(V_vocab, m_max)
    M = int(min(s.V_vocab, s.m_max))
    m_bar = 1.0 + sum(H.sf(math.log(j / s.c_p)) if j > s.c_p else 1.0 for j in range(1, M))
    b_bar = s.b_id + m_bar * (s.b_id + s.b_prob)
    g0 = 10 ** (-(128.1 + 37.6 * math.log10(s.d / 1000)) / 10)
    n0 = 10 ** ((s.N0_dBm_Hz + s.NF_dB - 30) / 10)
    r = s.W * math.log2(1 + s.P_tx * g0 / (n0 * s.W))
    r_dl = s.W_dl * math.log2(1 + s.P_edge * g0 / (n0 * s.W_dl))
    g = np.arange(s.gamma_max + 1, dtype=np.float64)
    n_hat = (1 - a_bar ** (g + 1)) / (1 - a_bar)
    d_hat = g * s.c_d / s.f + g * b_bar / r + s.t_v0 + s.t_v1 * g + s.delta + s.b_dl / r_dl
    t_hat = n_hat / d_hat
    assert abs(a_bar - 0.8422) < 5e-4 and abs(b_bar - 1071) < 1  # docs/model.md §9's ᾱ, b̄
    assert int(np.argmax(t_hat)) == 3 and abs(t_hat[3] - 32.6) < 0.05 and t_hat[4] < t_hat[3]
    assert "γ = 3 (≈32.6 tok/s" in _model_sections()[9]


def test_readme_quotes_the_measured_numbers():
    """Every number README.md takes from ``python bench/readme_numbers.py`` is quoted as measured
    (docs/readme_numbers.json holds the measurement and the exact README phrase)."""
    import json

    readme = " ".join((ROOT / "README.md").read_text().split())  # line breaks do not matter
    numbers = json.loads((ROOT / "docs" / "readme_numbers.json").read_text())["numbers"]
    assert len(numbers) >= 8
    missing = {k: e["readme"] for k, e in numbers.items() if e["readme"] not in readme}
    assert not missing, missing


def test_readme_researcher_commands_parse():
    """The 'Your own comparison' commands of README parse with today's CLI (not run here)."""
    import shlex

    from gelato_jax.cli import build_parser

    text = (ROOT / "README.md").read_text()
    block = text.split("### Your own comparison", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    cmds = [c for c in block.replace("\\\n", " ").splitlines() if c.startswith("gelato ")]
    assert len(cmds) == 2  # one run, one figure (and one line of Python for xarray)
    parser = build_parser()
    for c in cmds:
        args = parser.parse_args(shlex.split(c)[1:])
        assert args.command in ("compare", "figures")


def test_readme_headline_table_is_docs_headline_md():
    """README's 'GELATO relative to DSSD' rows are the ones `gelato headline` wrote to
    docs/headline.md (throughput, goodput, energy per round, in that order, per scenario)."""
    import re

    readme = (ROOT / "README.md").read_text().replace("−", "-")
    head = (ROOT / "docs" / "headline.md").read_text().replace("−", "-")
    rows = re.findall(r"^\| DSSD \(γ=4, scalar uplink\) \| ([+-][^|]+%[^|]*)\| ([^|]+)\| ([^|]+)\|", head, re.M)
    assert len(rows) == 2  # the GELATO-vs tables of the two scenarios
    for label, cells in zip(("W = 1 MHz, δ = 20 ms", "W = 1 MHz, δ = 140 ms"), rows):
        line = next(l for l in readme.splitlines() if l.startswith(f"| {label} |"))
        got = [c.strip() for c in line.split("|")[2:5]]
        assert got == [c.strip() for c in cells], (label, got, cells)


def test_readme_equal_energy_numbers_are_docs_headline_fair_md():
    """The equal-energy changes README quotes are cells of docs/headline_fair.md."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    fair = (ROOT / "docs" / "headline_fair.md").read_text()
    start = readme.index("At equal energy ([docs/headline_fair.md]")
    para = readme[start:readme.index("Why they differ", start)]
    quoted = [c for c in ("+14.0 % [+13.8, +14.2]", "+7.9 % [+7.8, +8.0]", "+2.8 % [+2.7, +2.9]", "0.1209 J", "0.1201")
              if c in para]
    assert len(quoted) == 5
    for c in quoted:
        assert c in fair, c
