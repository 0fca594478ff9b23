"""Adam as ``torch.optim.Adam`` computes it, without ``torch.optim``.

``torch.optim``'s optimisers import ``torch._dynamo`` the first time one is built (their methods
are wrapped to keep the compiler out): 1.9 s of every fresh process that fits, on these 2-core
machines, before the first step, and a wrapper on every step. A fit needs only plain Adam (no
weight decay, no AMSGrad), which is a few in-place operations per parameter: this is that, step for
step the arithmetic of ``torch.optim.Adam(foreach=False)`` (a test compares the two bit for bit).
"""

from __future__ import annotations

import torch


class Adam:
    """Adam over parameter groups, each a dict with ``params`` and ``lr`` (other keys are kept).

    Like ``torch.optim.Adam``, a parameter whose ``grad`` is None is skipped, and its moments'
    bias correction counts only its own steps (the entropy model's parameters train only in the
    rate phase).

    Examples
    --------
    >>> weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> optimizer = Adam([{"params": [weight], "lr": 0.1, "name": "weight"}])
    >>> (weight**2).sum().backward()
    >>> optimizer.step()
    >>> [round(value, 6) for value in weight.tolist()]  # a first step moves each value by lr
    [0.9, -1.9]
    """

    def __init__(
        self,
        param_groups: list[dict],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.param_groups = [{**group, "params": list(group["params"])} for group in param_groups]
        self.betas, self.eps = betas, eps
        # parameter -> [steps taken, first moment, second moment]
        self.state: dict[torch.Tensor, list] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            lr = group["lr"]
            for parameter in group["params"]:
                grad = parameter.grad
                if grad is None:
                    continue
                state = self.state.get(parameter)
                if state is None:
                    state = self.state[parameter] = [
                        0.0,
                        torch.zeros_like(parameter, memory_format=torch.preserve_format),
                        torch.zeros_like(parameter, memory_format=torch.preserve_format),
                    ]
                state[0] += 1.0  # a float, as torch.optim counts (powers of it then round alike)
                steps, exp_avg, exp_avg_sq = state
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = lr / (1 - beta1**steps)
                denom = (exp_avg_sq.sqrt() / (1 - beta2**steps) ** 0.5).add_(self.eps)
                parameter.addcdiv_(exp_avg, denom, value=-step_size)
