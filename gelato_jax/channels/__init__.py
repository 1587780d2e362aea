r"""Small-scale fading models (docs/model.md §2) as strategy objects, one file each.

A fading model is a :class:`~gelato_jax.channels.base.Fading`: ``init`` (per-realization state),
``next`` (the gain of round ``t`` and the next state, from the round's channel key) and ``law``
(the marginal law of ``h`` that a stationary randomized policy sees, used by ``optimum()``, the
renewal solver and the tightness atlas). ``Scenario.channel`` names one of :data:`FADING`; a new
channel is one module here plus its entry below (and any parameters it reads on ``Scenario``).
A model without a known marginal law raises in ``law``, so ``optimum()`` refuses it instead of
assuming the Exp(1) law of Rayleigh fading.
"""

from __future__ import annotations

from .base import DiscreteLaw, Exp1Law, Fading, FadingLaw
from .gauss_markov import GaussMarkov
from .rayleigh import Rayleigh
from .trace import Trace

__all__ = ["FADING", "Fading", "FadingLaw", "Exp1Law", "DiscreteLaw", "fading_of", "Rayleigh", "GaussMarkov", "Trace"]

#: The fading models by their ``Scenario.channel`` name.
FADING: dict[str, Fading] = {f.name: f for f in (Rayleigh(), GaussMarkov(), Trace())}


def fading_of(scenario) -> Fading:
    """The fading model ``scenario.channel`` names."""
    try:
        return FADING[scenario.channel]
    except KeyError:
        raise ValueError(f"Scenario.channel must be one of {list(FADING)}, got {scenario.channel!r}") from None
