r"""Energy arrivals ``a_t`` (docs/model.md §1) as small law objects, one per ``Scenario.energy_arrival``.

Each law has mean ``E_bar`` and is drawn from the round's arrival uniform ``u`` in ``(0, 1]`` by
inversion (the constant law reads no uniform). ``variance`` and ``maximum`` are what the drift
constant ``B`` and the tight constants need (``theory.bounds``, ``proofs_check.tightness``).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["ArrivalLaw", "Constant", "Exponential", "Uniform", "ARRIVALS", "arrival_law"]


class ArrivalLaw:
    """``sample(E_bar, u)``: the arrival for uniform(s) ``u``; ``variance(E_bar)``;
    ``maximum(E_bar)`` (``None``: unbounded)."""

    name: str = ""
    #: whether ``sample`` reads its uniform (the round kernel does not generate the word otherwise;
    #: the stream's layout is unchanged, so the other draws stay the same)
    reads_uniform: bool = True

    def sample(self, E_bar, u):
        raise NotImplementedError

    def variance(self, E_bar: float) -> float:
        raise NotImplementedError

    def maximum(self, E_bar: float) -> float | None:
        raise NotImplementedError


class Constant(ArrivalLaw):
    """``a_t = E_bar``."""

    name = "constant"
    reads_uniform = False

    def sample(self, E_bar, u):
        return jnp.broadcast_to(jnp.asarray(E_bar, jnp.result_type(u)), jnp.shape(u))

    def variance(self, E_bar):
        return 0.0

    def maximum(self, E_bar):
        return E_bar


class Exponential(ArrivalLaw):
    """``a_t ~ Exp`` with mean ``E_bar``: ``−E_bar log u``."""

    name = "exponential"

    def sample(self, E_bar, u):
        return -E_bar * jnp.log(u)

    def variance(self, E_bar):
        return E_bar**2

    def maximum(self, E_bar):
        return None


class Uniform(ArrivalLaw):
    """``a_t ~ U[0, 2 E_bar]``: ``2 E_bar u``."""

    name = "uniform"

    def sample(self, E_bar, u):
        return 2.0 * E_bar * u

    def variance(self, E_bar):
        return E_bar**2 / 3.0

    def maximum(self, E_bar):
        return 2.0 * E_bar


#: The arrival laws by their ``Scenario.energy_arrival`` name.
ARRIVALS: dict[str, ArrivalLaw] = {a.name: a for a in (Constant(), Exponential(), Uniform())}


def arrival_law(scenario) -> ArrivalLaw:
    """The law ``scenario.energy_arrival`` names."""
    try:
        return ARRIVALS[scenario.energy_arrival]
    except KeyError:
        raise ValueError(f"Scenario.energy_arrival must be one of {list(ARRIVALS)}, got {scenario.energy_arrival!r}") from None
