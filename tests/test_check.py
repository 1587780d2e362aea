"""``gelato_jax.testing.check_policy`` and ``gelato check`` on a user-style policy (issue 20).

The correct policy is the README's example, ``docs/examples/my_policy.py``; the deliberately
broken ones below each break one invariant, and each must FAIL on that invariant with a shrunk
counterexample that shows the breaking condition. All checks are deterministic (derandomized
hypothesis, no statistics): a failure here is a bug, never chance. The default suite draws
``gamma_max = 4`` only (one compilation per kernel and policy class); the slow test runs the
whole command as a user would.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys

import jax
import jax.numpy as jnp
import pytest

from gelato_jax.cli import main
from gelato_jax.policies import pytree_dataclass, static_field
from gelato_jax.testing import INVARIANTS, check_policy
from gelato_jax.testing.cli import load_policy_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "my_policy.py")
MyPolicy = load_policy_class(f"{EXAMPLE}:MyPolicy")
FAST = dict(examples=4, statics={"gamma_max": (4,)})


# ----------------------------------------------------------------------------- broken policies
@pytree_dataclass
class TooLargeAtEmptyQueue(MyPolicy):
    """Off by one at an empty queue: returns γ_max + 1 (the round would silently clip it)."""

    declared_properties = ()

    def choose_budget(self, scenario, aux, state, obs):
        b = super().choose_budget(scenario, aux, state, obs)
        return jnp.where(obs.queue == 0, scenario.gamma_max + 1, b)


@pytree_dataclass
class NaNAtLargeQueue(MyPolicy):
    """``γ_max·sqrt(1 − Z/Z_cap)``: believes the queue stays below 1e6 J; NaN above it."""

    declared_properties = ()

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.floor(scenario.gamma_max * jnp.sqrt(1.0 - obs.queue / 1e6))


_CALLS = [0]


@pytree_dataclass
class GlobalCounter(MyPolicy):
    """Hidden state in a Python global: counts its own calls (under ``jit``: its traces)."""

    declared_properties = ()

    def choose_budget(self, scenario, aux, state, obs):
        _CALLS[0] += 1
        return (super().choose_budget(scenario, aux, state, obs) + _CALLS[0]) % (scenario.gamma_max + 1)


@pytree_dataclass
class RisesWithQueue(MyPolicy):
    """Declares monotonicity in the queue, but drafts more the fuller the queue is."""

    declared_properties = ("monotone_in_queue",)

    def choose_budget(self, scenario, aux, state, obs):
        return jnp.minimum(jnp.floor(jnp.log10(1.0 + obs.queue)), scenario.gamma_max).astype(jnp.int32)


@pytree_dataclass
class StaticV(MyPolicy):
    """``V`` declared static: every new value of ``V`` compiles a new program."""

    V: float = static_field(0.1)
    declared_properties = ()


# ----------------------------------------------------------------------------- tests
def test_correct_user_policy_passes_every_invariant():
    """The README's example passes every invariant and its three declared properties
    (``chunking`` runs in the slow CLI test: it compiles two ``simulate`` programs)."""
    only = [n for n in INVARIANTS if n != "chunking"]
    rep = check_policy(MyPolicy(), only=only, **FAST)
    assert [r.name for r in rep.results] == only
    assert rep.ok and all(r.status == "pass" for r in rep.results), rep.format()
    assert rep.format().splitlines()[-1].startswith(f"{len(only)} of {len(only)} invariants hold")
    assert rep.exit_code == 0


@pytest.mark.parametrize(
    "cls,invariant,pattern",
    [
        (TooLargeAtEmptyQueue, "budget_range", r"returned 5, not an integer in \[0, gamma_max=4\]"),
        (NaNAtLargeQueue, "finite", r"choose_budget returned nan"),
        (GlobalCounter, "purity", r"choose_budget returned .* then .* on the same arguments"),
        (RisesWithQueue, "monotone_in_queue", r"budget rose from \d+ at Z=.* to \d+ at Z="),
        (StaticV, "no_retrace", r"changing StaticV\.V from 0\.1 to .* recompiles \(a static field\)"),
    ],
    ids=lambda x: getattr(x, "__name__", str(x))[:20],
)
def test_broken_policy_fails_its_invariant_with_a_shrunk_example(cls, invariant, pattern):
    rep = check_policy(cls(), only=[invariant], **FAST)
    res = rep[invariant]
    assert res.status == "FAIL", rep.format()
    assert re.search(pattern, res.message), res.message
    assert res.counterexample.startswith("Scenario("), res.counterexample
    assert not rep.ok and rep.exit_code == 1
    text = res.counterexample
    if cls is TooLargeAtEmptyQueue:  # shrunk to the triggering round: an empty queue
        assert "Z=0 J" in text or "Z_t=0 J" in text, text
    if cls is NaNAtLargeQueue:  # the round that breaks it has Z > 1e6 J
        z = float(re.search(r"Z_t=([0-9.e+\-]+) J", text).group(1))
        assert z > 1e6, text
    if cls is RisesWithQueue:  # the queues and budgets that show the rise
        assert "-> budgets" in text, text


def test_declared_properties_skip_when_not_declared_and_need_their_interface():
    rep = check_policy(TooLargeAtEmptyQueue(), only=["monotone_in_queue", "greedy_limit"], **FAST)
    assert [r.status for r in rep.results] == ["skip", "skip"] and rep.ok
    with pytest.raises(ValueError, match="unknown declared"):
        check_policy(MyPolicy(), declared=["convex"])
    with pytest.raises(ValueError, match="unknown invariants"):
        check_policy(MyPolicy(), only=["nope"])


def test_a_subclass_without_the_decorator_is_a_pytree_and_a_factory_must_return_a_policy():
    class Plain(MyPolicy):  # every Policy is an equinox.Module: no decorator needed to be a pytree
        pass

    assert jax.tree_util.tree_structure(Plain()) != jax.tree_util.tree_structure(MyPolicy())
    assert check_policy(Plain(), only=["budget_range"], **FAST).ok
    with pytest.raises(ValueError, match="the factory returned int, not a gelato_jax.policies.Policy"):
        check_policy(lambda s: 3, only=["budget_range"], **FAST)


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_check_prints_one_line_per_invariant(tmp_path):
    """``gelato check`` on a file: one line per invariant, exit 0 when all hold, 1 with the FAIL line
    and its counterexample otherwise (``no_retrace`` lowers without compiling, so the test is fast;
    the full run is the slow test below)."""
    code, out, _ = _cli(["check", f"{EXAMPLE}:MyPolicy", "--only", "no_retrace", "--examples", "3",
                         "--set", "gamma_max=4", "--set", "V=0.5", "--declare", "monotone_in_queue"])
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("gelato check") and lines[1].startswith("pass  no_retrace"), out
    assert lines[2].startswith("1 of 1 invariants hold"), out
    broken = tmp_path / "her_policy.py"
    broken.write_text(
        "import jax.numpy as jnp\n"
        "from gelato_jax.policies import Policy, pytree_dataclass, static_field\n\n"
        "@pytree_dataclass\n"
        "class MyPolicy(Policy):\n"
        "    V: float = static_field(0.1)\n\n"
        "    def choose_budget(self, scenario, aux, state, obs):\n"
        "        return jnp.asarray(0)\n"
    )
    code, out, _ = _cli(["check", f"{broken}:MyPolicy", "--only", "no_retrace", "--set", "W=5e6"])
    assert code == 1, out
    assert re.search(r"^FAIL  no_retrace", out, re.M) and "counterexample: Scenario(W=5e+06" in out, out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["check", "nocolon"], "MODULE:CLASS"),
        (["check", "missing_file.py:MyPolicy"], "does not exist"),
        (["check", "no_such_module_xyz:MyPolicy"], "cannot import"),
        (["check", f"{EXAMPLE}:Nope"], "no attribute"),
        (["check", f"{EXAMPLE}:Policy"], None),  # the base class itself is a Policy: accepted by the loader
        (["check", "gelato_jax.scenario:Scenario"], "not a subclass"),
        (["check", f"{EXAMPLE}:MyPolicy", "--only", "bogus"], "--only"),
        (["check", f"{EXAMPLE}:MyPolicy", "--declare", "convex"], "--declare"),
        (["check", f"{EXAMPLE}:MyPolicy", "--set", "zzz=1"], "unknown field"),
        (["check", f"{EXAMPLE}:MyPolicy", "--set", "W=-1"], "Scenario.W"),
        (["check", f"{EXAMPLE}:MyPolicy", "--examples", "0"], "--examples"),
    ],
)
def test_cli_check_bad_input_is_one_line_exit_2(argv, needle):
    if needle is None:
        return
    code, out, err = _cli(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, (code, err)


def test_missing_extra_gives_one_line_error(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("gelato_jax.testing")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'gelato-jax\[testing\]'"):
        import gelato_jax.testing  # noqa: F401


@pytest.mark.slow
def test_cli_check_full_run_on_the_example():
    """What a user runs: every invariant, 25 examples, both static shapes (measured for the
    issue's two-minute target; see docs/testing.md)."""
    code, out, _ = _cli(["check", f"{EXAMPLE}:MyPolicy"])
    assert code == 0, out
    assert len(re.findall(r"^pass ", out, re.M)) == len(INVARIANTS), out


def test_readme_example_is_the_checked_file():
    """README's "Test your controller" policy is docs/examples/my_policy.py, verbatim."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("## Test your controller"):]
    block = section[section.index("```python\n") + len("```python\n"):]
    block = block[: block.index("```")]
    assert block == open(EXAMPLE, encoding="utf-8").read()
    assert len(block.splitlines()) <= 35  # the "30-line policy"


def test_observation_strategy_matches_the_round():
    """``strategies.observations``: the rates and the outage flag are the round's own functions of
    the drawn fading (clamped at ``h_min``), the queue is ``≥ 0``."""
    from hypothesis import given, settings

    from gelato_jax import Scenario, channel
    from gelato_jax.testing import strategies as gst

    scen = Scenario(r_min=3e6)  # outage in about a fifth of the draws

    @settings(max_examples=10)
    @given(obs=gst.observations(scen))
    def check(obs):
        assert float(obs.h) >= scen.h_min and float(obs.queue) >= 0
        assert float(obs.rate) == float(channel.uplink_rate(scen, obs.h))
        assert bool(obs.outage) == (float(obs.rate) < scen.r_min)

    check()


_DEVICES = """
import jax
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
from gelato_jax.testing import check_policy
from gelato_jax.testing.cli import load_policy_class
MyPolicy = load_policy_class(%r + ":MyPolicy")
assert jax.device_count() == 4
rep = check_policy(MyPolicy(), only=["chunking"], examples=4, statics={"gamma_max": (4,)})
print(rep.format())
assert rep.ok and "device count not tested" not in rep["chunking"].message
print("DEVICES-OK")
"""


@pytest.mark.slow
def test_chunking_checks_the_device_count_with_4_fake_devices():
    """With 4 (fake CPU) devices ``chunking`` also compares a sharded ``sweep`` with one device."""
    import subprocess

    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _DEVICES % EXAMPLE], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0 and "DEVICES-OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
