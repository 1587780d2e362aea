r"""theory: sympy derivations of GELATO's closed forms, constants and theorem (docs/model.md §8).

Modules (import them explicitly; this package import is light and does not load sympy):

* ``theory.closed_forms`` — sympy objects: expected tokens (i.i.d. and position-dependent),
  ``ᾱ`` as an integral, round latency/energy, mean proxy;
* ``theory.codegen`` — prints their JAX forms into ``theory/_generated.py`` (used by the
  simulator, checked up to date by a test);
* ``theory.bounds`` — ``E_max``, ``T_max``, Slater slack, drift constant ``B``, proxy error
  ``C`` and the theorem's bounds (sympy expressions + evaluators);
* ``theory.derivation`` — writes ``theory/DERIVATION.md`` from the sympy objects;
* ``theory.cli`` — ``python -m theory`` / ``gelato theory``: the constants and bounds for a scenario.
"""
