"""CLI: simulate on defaults, JSON output, saved results, bad input -> one line + exit 2."""

import json
import os
import subprocess
import sys

import pytest

from gelato_jax.cli import main

SMALL = ["--realizations", "4", "--rounds", "50", "--quiet"]


def test_simulate_json(capsys):
    assert main(["simulate", *SMALL, "--json", "--set", "V=2", "--set", "W=2e6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy_fields"]["V"] == 2.0 and out["scenario"]["W"] == 2e6
    s = out["summary"]["throughput"]
    assert s["ci_low"] <= s["mean"] <= s["ci_high"] and 15 < s["mean"] < 45


def test_simulate_table_and_saved_results(capsys, tmp_path):
    assert main(["simulate", *SMALL, "--policy", "static", "--set", "gamma=2", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "throughput" in text and "95% CI" in text
    import numpy as np

    data = np.load(tmp_path / "simulate.npz")
    assert data["throughput"].shape == (4,)
    meta = json.loads((tmp_path / "simulate.json").read_text())
    assert meta["policy"] == "static" and meta["environment"]["jax"]


def test_simulate_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[scenario]\nE_bar = 0.03\n[policy]\nname = "gelato"\nV = 0.5\nexit = "none"\n')
    assert main(["simulate", *SMALL, "--json", "--config", str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"]["E_bar"] == 0.03 and out["policy_fields"]["exit"] == "none"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--set", "W=-1"], "Scenario.W"),
        (["--set", "W=nan"], "Scenario.W"),
        (["--set", "V=-1"], "Gelato.V"),
        (["--set", "gamma_max=0"], "Scenario.gamma_max"),
        (["--set", "nope=1"], "unknown field"),
        (["--set", "W"], "field=value"),
        (["--policy", "magic"], "--policy"),
        (["--policy", "static", "--set", "gamma=99"], "StaticSD.gamma"),
        (["--config", "/does/not/exist.toml"], "does not exist"),
        (["--rounds", "-5"], "--rounds"),
        (["--realizations", "abc"], "--realizations"),
    ],
)
def test_simulate_bad_input_one_line_exit_2(argv, needle, capsys, tmp_path):
    out_dir = tmp_path / "out"
    assert main(["simulate", *SMALL, "--out", str(out_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())  # nothing written


def test_module_entry_point_bad_input_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "gelato_jax", "simulate", "--set", "E_bar=inf"],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Scenario.E_bar" in proc.stderr


def test_help_of_every_subcommand(capsys):
    from gelato_jax.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "simulate" in sub.choices
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_out_that_is_a_file_fails_before_simulating(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    assert main(["simulate", *SMALL, "--out", str(f)]) == 2
    assert "--out" in capsys.readouterr().err and f.read_text() == "keep me"


def test_a_missing_optional_extra_disables_only_its_command(monkeypatch, capsys):
    # optax no longer pulls in chex: `pip install -e .` has no chex, and `gelato check` (the testing
    # extra) must not take the other commands down with it
    from gelato_jax import cli

    real = cli._load_extension

    def load(module):
        if module == "gelato_jax.testing.cli":
            raise ModuleNotFoundError("No module named 'chex'", name="chex")
        return real(module)

    monkeypatch.setattr(cli, "_load_extension", load)
    assert "verify" in cli.build_parser().format_help()
    rc = cli.main(["check", "her_policy.py:MyPolicy"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "gelato check needs the testing extra (chex is not installed): pip install 'gelato-jax[testing]'" in err


def test_each_command_is_defined_by_the_module_main_loads_for_it():
    # main builds the parser of the command it runs from one module (cli.COMMANDS); every module
    # must register exactly the commands listed for it, and the one-command parser must accept
    # what the full one accepts
    import argparse

    from gelato_jax import cli

    for module, commands in cli._EXTENSION_COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        cli._load_extension(module)(sub)
        assert tuple(sub.choices) == commands, module

    def commands(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    full = commands(cli.build_parser())
    assert set(full) == set(cli.COMMANDS)
    for command in cli.COMMANDS:
        one = commands(cli.build_parser(command))
        # simulate is built in; a module registers all of its commands
        assert set(one) == {"simulate", *cli._EXTENSION_COMMANDS.get(cli.COMMANDS[command], ())}, command
        assert one[command].format_help() == full[command].format_help(), command
