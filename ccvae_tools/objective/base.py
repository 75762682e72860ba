"""The regulariser interface: a term the training loop adds to the loss without seeing inside it.

The loop computes the bound (`bound.ccvae_bound`), then asks each enabled regulariser for its
weighted loss; after the model's optimiser step it lets each take its own step (a regulariser with
a network of its own trains it there); at an evaluation it asks each for the means of what it
logged during the epoch; at a checkpoint for its state. A regulariser is enabled by a training
option that holds its weight (0 = off): the option's name is its `option`.

To add one: a module in this package with a `Regulariser` subclass, one line in `registry.py`, and
one field in `training/options.py` for its weight (docs/architecture.md shows it whole).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ccvae_tools.objective.bound import BoundTerms


class Regulariser:
    """Base class. `weight` is the option's value; `model` the bare network (not a DDP wrapper);
    `world` the number of processes (each sees its share of the batch)."""

    option: ClassVar[str] = ""          # the training option that holds the weight

    def __init__(self, weight: float, model, *, world: int = 1, lr: float = 1e-3,
                 device: torch.device | None = None):
        self.weight, self.model, self.world = weight, model, world
        self.logs: dict[str, list[float]] = {}

    def loss(self, x: torch.Tensor, terms: BoundTerms, y: torch.Tensor, observed: torch.Tensor,
             autocast: Callable[[], Any]) -> torch.Tensor:
        """The weighted term to add to this step's loss. x: the batch's images as the bound saw them
        (B, C, H, W) in [0, 1]; terms: the bound's pieces; y (B, L) long and observed (B, L) bool."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after the model's optimiser step (a regulariser with its own network trains it here)."""

    def notes(self, batch_size: int) -> list[str]:
        """Warnings to show before training (e.g. batches too small for the term to act)."""
        return []

    def distribute(self, wrap: Callable[[torch.nn.Module], torch.nn.Module]) -> None:
        """Under torchrun: wrap any network of its own for DistributedDataParallel."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs, as entries of the resume state (state.safetensors, training/state.py)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from the resume state (the same entries `state_dict` wrote)."""

    # -- the epoch's logs ------------------------------------------------------------------------
    def record(self, **values: float) -> None:
        for name, value in values.items():
            self.logs.setdefault(name, []).append(value)

    def start_epoch(self) -> None:
        self.logs = {}

    def epoch_means(self) -> dict[str, float]:
        return {name: float(np.mean(v)) for name, v in self.logs.items() if v}
