"""The structured verdict every check returns.

``passed`` is ``True`` (the claim held), ``False`` (the data contradict the claim: ``gelato verify``
exits non-zero when the claim is one of the theorem's), or ``None`` (not a pass/fail claim: an
observation outside the theorem's assumptions, a check that could not run, or a configuration that
does not apply to the scenario — ``status`` then says which and ``details`` why).

``category`` separates the claims of the theorem (``THEOREM``: they decide the exit status) from
rates the theorem does not state (``RATE``, "rate (beyond the theorem)": log-log slopes of the gap,
of the queue and of ``G_L``; reported, and failing the run only with ``--strict``).
``direction`` says in words which way the statistic must lie for the claim to pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["Verdict", "not_run", "observation", "not_applicable", "THEOREM", "RATE", "CATEGORIES"]

STATUSES = ("pass", "FAIL", "not run", "observation", "inconclusive", "not applicable")
THEOREM = "theorem"
RATE = "rate (beyond the theorem)"
CATEGORIES = (THEOREM, RATE)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Outcome of one check of one claim of docs/model.md §8.

    claim: the claim in words (with its §8 number).
    statistic: the measured quantity (e.g. the worst violation, the mean gap).
    bound: what the statistic is compared with (``None`` when not a comparison).
    ci: ``(low, high)`` confidence interval of the statistic, or ``None``.
    passed: ``True`` / ``False`` / ``None`` (see module docstring).
    details: everything else a reader needs (sample sizes, false-failure rate, per-V arrays).
    status: ``"pass"``, ``"FAIL"``, ``"not run"``, ``"observation"``, ``"inconclusive"`` or
        ``"not applicable"``.
    config: the configuration the check ran on (``""`` for scenario-level checks).
    direction: which way passes, in words (e.g. ``"statistic ≤ bound"``, ``"CI upper < bound"``).
    category: ``THEOREM`` (decides the exit status) or ``RATE`` (only with ``strict``).
    """

    claim: str
    statistic: float | None
    bound: float | None
    ci: tuple[float, float] | None
    passed: bool | None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = ""
    config: str = ""
    direction: str = ""
    category: str = THEOREM

    def __post_init__(self):
        if not self.status:
            object.__setattr__(self, "status", {True: "pass", False: "FAIL", None: "inconclusive"}[self.passed])
        if self.status not in STATUSES:
            raise ValueError(f"Verdict.status must be one of {STATUSES}, got {self.status!r}")
        if self.passed is not None and self.status != ("pass" if self.passed else "FAIL"):
            raise ValueError(f"Verdict.status {self.status!r} contradicts passed={self.passed}")
        if self.category not in CATEGORIES:
            raise ValueError(f"Verdict.category must be one of {CATEGORIES}, got {self.category!r}")

    def with_config(self, config: str) -> "Verdict":
        return dataclasses.replace(self, config=config)

    def as_dict(self) -> dict[str, Any]:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return str(x)
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return x

        return clean(
            {
                "claim": self.claim,
                "config": self.config,
                "category": self.category,
                "status": self.status,
                "direction": self.direction,
                "passed": self.passed,
                "statistic": _num(self.statistic),
                "bound": _num(self.bound),
                "ci": None if self.ci is None else [_num(self.ci[0]), _num(self.ci[1])],
                "details": _plain(self.details),
            }
        )


def _num(x):
    if x is None:
        return None
    return float(x)


def _plain(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return x.item()
    return x


def not_run(claim: str, reason: str, *, category: str = THEOREM, **details) -> Verdict:
    """A check that could not run (never a pass)."""
    return Verdict(claim, None, None, None, None, {"reason": reason, **details}, status="not run", category=category)


def not_applicable(claim: str, reason: str, **details) -> Verdict:
    """A configuration (or check) that does not apply to the scenario: reported with the reason,
    never a pass and never a failure."""
    return Verdict(claim, None, None, None, None, {"reason": reason, **details}, status="not applicable")


def observation(claim: str, statistic, bound, ci, details: dict | None = None, *, direction: str = "", category: str = THEOREM) -> Verdict:
    """A reported measurement outside the theorem's assumptions (never a pass or a failure)."""
    return Verdict(claim, statistic, bound, ci, None, dict(details or {}), status="observation", direction=direction, category=category)
