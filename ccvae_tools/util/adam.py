"""Adam, bit for bit torch.optim.Adam's default path, without torch.optim's import cost.

torch.optim's `Optimizer` imports `torch._dynamo` the first time one is built or stepped: 2.5 s of
every training command's start-up on a 2-core CPU (docs/experiments.md "Start-up"), for a compiler
that eager training never uses. This class does the arithmetic of torch.optim.Adam with its
defaults (no weight decay, no amsgrad, the single-tensor path that the CPU takes), in the same
order, so that a run's numbers are identical with either (tests/test_adam.py), and its state_dict
has torch's layout, so that resume states written with either load into the other.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

# the hyper-parameters torch.optim.Adam records in each param group, at its defaults
_GROUP_DEFAULTS = {"weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                   "differentiable": False, "fused": None, "decoupled_weight_decay": False}


class Adam:
    """Adam(params, lr, betas, eps) with `step`, `zero_grad`, `state_dict`, `load_state_dict` and
    `param_groups`, which is what the training loop, DDP and torch.amp.GradScaler use."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [
            {"params": params, "lr": lr, "betas": tuple(betas), "eps": eps, **_GROUP_DEFAULTS}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, lr, beta1, beta2, eps)

    def _update(self, p, grad, lr: float, beta1: float, beta2: float, eps: float) -> None:
        st = self.state.get(p)
        if not st:
            st = self.state[p] = {"step": torch.tensor(0.0),
                                  "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                  "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        st["step"] += 1
        st["exp_avg"].lerp_(grad, 1 - beta1)
        st["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = st["step"].item()
        step_size = lr / (1 - beta1 ** step)
        denom = (st["exp_avg_sq"].sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
        p.addcdiv_(st["exp_avg"], denom, value=-step_size)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: per-parameter state keyed by the parameter's index, and the groups."""
        index = {p: i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for g in self.param_groups:
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
        return {"state": {index[p]: dict(st) for p, st in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A state_dict of this class or of torch.optim.Adam for the same parameters."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)):
            raise ValueError("the optimiser state is for a different set of parameters")
        saved = state_dict["state"]
        self.state = {}
        for g, mine in zip(groups, self.param_groups):
            mine.update({k: v for k, v in g.items() if k != "params"})
            mine["betas"] = tuple(mine["betas"])
            for i, p in zip(g["params"], mine["params"]):
                if i in saved:
                    self.state[p] = {k: (v if k == "step" else v.to(dtype=p.dtype, device=p.device))
                                     for k, v in saved[i].items()}
