"""README's theorist example (issue 13): docs/examples/theorist.toml parses into the scenario the
README states, and the README's Python snippet builds the same scenario (its code block is parsed,
not executed: the whole verify takes minutes)."""

import ast
import re
from pathlib import Path

from gelato_jax import Scenario
from gelato_jax.cli_inputs import read_model_tables

ROOT = Path(__file__).resolve().parents[1]
TOML = ROOT / "docs" / "examples" / "theorist.toml"
HEADING = "#### Verifying the bound in your own regime"
STATED = dict(W=5e6, E_bar=0.03, gamma_max=6, energy_arrival="exponential")


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    assert HEADING in text
    body = text.split(HEADING, 1)[1]
    return re.split(r"\n#{2,4} ", body, maxsplit=1)[0]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _scenario_kwargs(code: str) -> dict:
    """The keyword literals of the one ``Scenario(...)`` call in ``code``."""
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Scenario"]
    assert len(calls) == 1, code
    assert not calls[0].args
    return {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords}


def _fields(s: Scenario) -> dict:
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in s.to_dict().items()}


def test_theorist_toml_is_the_stated_scenario():
    scen, pol, name = read_model_tables(str(TOML))
    assert scen == STATED and pol == {} and name == "gelato"
    assert _fields(Scenario.from_dict(scen)) == _fields(Scenario(**STATED))


def test_readme_snippet_matches_the_toml():
    sec = _section()
    cmds = [ln.strip() for b in _blocks(sec, "bash") for ln in b.splitlines() if ln.strip()]
    assert any(c.startswith("gelato verify --quick --config docs/examples/theorist.toml") for c in cmds), cmds
    (code,) = _blocks(sec, "python")
    assert "proofs_check.verify(" in code
    kw = _scenario_kwargs(code)
    assert kw == STATED
    scen, _, _ = read_model_tables(str(TOML))
    assert _fields(Scenario(**kw)) == _fields(Scenario.from_dict(scen))
    # the snippet passes no policy: GELATO with its defaults, as the TOML's [policy] table says
    call = next(n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "verify")
    assert len(call.args) == 1 and "policy" not in {k.arg for k in call.keywords}
    # the constants the section explains are the Tightness table's
    for word in ("B", "κ̂ = lim V·G_L(V)", "σ²/4", "regime"):
        assert word in sec, word
