"""Every regulariser the training loop knows, in the order their terms are added to the loss."""

from __future__ import annotations

from ccvae_tools.objective.adversary import StyleAdversaryTerm
from ccvae_tools.objective.base import Regulariser
from ccvae_tools.objective.consistency import ConsistencyTerm
from ccvae_tools.objective.cycle import SwapCycleTerm
from ccvae_tools.objective.decorrelate import DecorrelationTerm
from ccvae_tools.objective.pseudo import PseudoLabelTerm

REGULARISERS: tuple[type[Regulariser], ...] = (StyleAdversaryTerm, DecorrelationTerm, SwapCycleTerm,
                                                PseudoLabelTerm, ConsistencyTerm)


def enabled_regularisers(opts, model, *, world: int, device) -> list[Regulariser]:
    """The regularisers whose weight option is above 0, built in registry order (an adversary's
    network draws its initial weights from the RNG, so the order is part of a run's result)."""
    return [cls(getattr(opts, cls.option), model, world=world, lr=opts.lr, device=device)
            for cls in REGULARISERS if getattr(opts, cls.option) > 0]
