"""Shared ``main`` of the generators (``theory.codegen``, ``theory.derivation``): write the
generated text atomically, or with ``--check`` report whether the committed file is current."""

from __future__ import annotations

import os

from gelato_jax.io import atomic_write_bytes


def write_or_check(path: str, text: str, argv: list[str], regenerate: str) -> int:
    """Exit status: 0 when written or up to date, 1 when ``--check`` finds the file stale."""
    name = os.path.relpath(path, os.path.dirname(os.path.dirname(path)))
    if "--check" in argv:
        with open(path, encoding="utf-8") as fh:
            same = fh.read() == text
        print(f"{name} is up to date" if same else f"{name} is STALE: run {regenerate}")
        return 0 if same else 1
    atomic_write_bytes(path, text.encode("utf-8"))
    print(f"wrote {path}")
    return 0
