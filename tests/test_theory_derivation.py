"""theory/DERIVATION.md is generated from the sympy objects and committed up to date; python -m theory."""

import json
import subprocess
import sys

from theory import derivation


def test_derivation_md_is_up_to_date():
    with open(derivation.DERIVATION_PATH, encoding="utf-8") as fh:
        assert fh.read() == derivation.render(), "run: python -m theory.derivation"


def test_derivation_mentions_every_result():
    text = derivation.render()
    for needle in ["## 4. Drift", "max(\\cdot,0)^2", "stationary randomized", "T^{*} - \\frac{B + C}{V}",
                   "A1", "A5", "not valid in general"]:
        assert needle in text, needle


def test_python_m_theory_bad_input_exits_2():
    r = subprocess.run([sys.executable, "-m", "theory", "--proxy", "magic"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "proxy" in r.stderr and "Traceback" not in r.stderr
