"""proofs_check: empirical verification of GELATO's drift-plus-penalty theorem (MODEL.md §8).

* ``proofs_check.verdict`` — ``Verdict`` (claim, statistic, bound, confidence interval, passed);
* ``proofs_check.checks`` — one small check per claim, on plain arrays (testable on
  counterexamples);
* ``proofs_check.sweep`` — the V sweep as one compiled program (vmap over V and realizations);
* ``proofs_check.run`` — the configurations and ``run_verify``;
* ``proofs_check.report`` — report.md / report.json / figures;
* ``proofs_check.cli`` — ``gelato verify [--quick] [--out DIR] [--json]``.

The package import is light (no JAX); import the submodules you need.
"""

__all__ = ["verdict", "checks", "sweep", "run", "report", "cli"]
