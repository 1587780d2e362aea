"""No silently ignored flag, statically: every option of every ``gelato`` command is read somewhere
the command's arguments go (issue 16, item 7).

For each subcommand, every ``argparse`` destination must appear as ``args.<dest>``,
``getattr(args, "<dest>")`` or the string ``"<dest>"`` in the source of the module that defines
the command's function or of the shared argument modules that command functions hand ``args`` to
(``cli_inputs``: ``--config``/``--set``/...; ``compare``: the grid helpers of sweep/compare;
``distributed``: the multi-process flags). A parsed option that no such module reads is a flag
the command ignores. This does not show that an option has an effect; the option-effect tests of
compare, sweep and figures (``tests/test_sweep.py``) and the per-command tests do that.
"""

import importlib
import inspect
import re

from gelato_jax.cli import build_parser

# (``importlib``: ``gelato_jax.compare`` the package attribute is the function of that name)
_SHARED = [importlib.import_module(f"gelato_jax.{m}") for m in ("cli_inputs", "compare", "distributed")]


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def _unread(parser, src: str) -> list[str]:
    """Options of ``parser`` whose destination ``src`` never reads."""
    out = []
    for a in parser._actions:
        if not a.option_strings or a.dest == "help":
            continue
        if not re.search(rf"args\.{a.dest}\b|getattr\(args, [\"']{a.dest}[\"']|[\"']{a.dest}[\"']", src):
            out.append(a.option_strings[0])
    return out


def test_every_option_of_every_command_is_read():
    shared = "".join(inspect.getsource(m) for m in _SHARED)
    commands = _subcommands()
    assert {"simulate", "sweep", "compare", "verify", "theory", "headline", "figures"} <= set(commands)
    unread = {}
    for name, p in commands.items():
        func = p.get_default("func")
        assert func is not None, name
        missing = _unread(p, inspect.getsource(inspect.getmodule(func)) + shared)
        if missing:
            unread[name] = missing
    assert not unread, unread


def test_the_check_sees_an_unread_option():
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--seed")
    p.add_argument("--rounds")
    p.add_argument("--no-figures", action="store_true")
    assert _unread(p, "def cmd(args):\n    return args.seed, getattr(args, 'no_figures')\n") == ["--rounds"]
    assert _unread(p, "def cmd(args):\n    return args.seeds\n") == ["--seed", "--rounds", "--no-figures"]
