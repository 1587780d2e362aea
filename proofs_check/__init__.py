"""proofs_check: empirical verification of GELATO's drift-plus-penalty theorem (docs/model.md §8).

* ``proofs_check.verify(scenario=None, policy=None, *, quick=True, seed=0, only=None, out=None,
  progress=None, strict=False) -> VerifyReport`` — the Python API (``gelato verify`` calls it);
  float64 whatever the caller's JAX configuration (see ``proofs_check.run.verify``);
* ``proofs_check.verdict`` — ``Verdict`` (claim, statistic, bound, confidence interval, passed,
  direction, category);
* ``proofs_check.checks`` — one small check per claim, on plain arrays (testable on
  counterexamples);
* ``proofs_check.sweep`` — the V sweep as one compiled program (vmap over V and realizations);
* ``proofs_check.run`` — the configurations derived from a scenario, ``run_verify`` and ``verify``;
* ``proofs_check.report`` — ``VerifyReport``, report.md / report.json / figures;
* ``proofs_check.cli`` — ``gelato verify [--quick] [--config FILE.toml] [--set ...] [--only a,b]``.

The package import is light (no JAX): ``verify`` and ``VerifyReport`` import their modules on use.
"""

__all__ = ["verify", "VerifyReport", "verdict", "checks", "sweep", "run", "report", "cli"]


def verify(scenario=None, policy=None, *, quick=True, seed=0, only=None, out=None, progress=None, strict=False, **kw):
    """Check every claim of docs/model.md §8 on ``scenario``; see ``proofs_check.run.verify``."""
    from .run import verify as _verify

    return _verify(scenario, policy, quick=quick, seed=seed, only=only, out=out, progress=progress, strict=strict, **kw)


def __getattr__(name):
    if name == "VerifyReport":
        from .report import VerifyReport

        return VerifyReport
    if name in ("verdict", "checks", "sweep", "run", "report", "cli"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
