"""EnvDrop's two optimisers, RMSprop (follower) and Adam (speaker), without the memory ``torch.optim`` costs.

Building the first ``torch.optim.Optimizer`` imports ``torch._dynamo``, and with it sympy and Triton's
libraries: 110-200 MB of resident memory that a training run never uses (``benchmarks/bench_train.py``'s
follower on the real R2R set-up peaked at 2,206 MB with ``torch.optim``, 2,041-2,099 MB without it). These
classes do what ``torch.optim.RMSprop`` and ``torch.optim.Adam`` do with the hyper-parameters EnvDrop uses
(no momentum, no weight decay, not centred, no AMSGrad): the same arithmetic, op for op, as torch's
single-tensor path (the one it takes on a CPU), except that Adam updates float32 parameters on a CPU with
torch's fused kernel, as ``torch.optim.Adam(fused=True)`` does. Their state dicts have torch's format, so a
checkpoint moves between the two either way; loading one whose other hyper-parameters these classes do not
apply is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch

StateDict = dict[str, Any]
IMPLEMENTATION = {"capturable", "foreach", "differentiable", "fused"}  # how torch computes, not what: not checked


class Optimizer:
    """One parameter group, per-parameter state and torch's state-dict format; subclasses do the update."""

    # torch's hyper-parameters that this class keeps at their defaults (written to state dicts as torch does)
    fixed: ClassVar[dict[str, Any]] = {}
    buffers: tuple[str, ...] = ()  # per-parameter state besides "step", zero at the start

    def __init__(self, params: Iterable[torch.nn.Parameter], **hyper: Any) -> None:
        self.param_groups = [{**hyper, **self.fixed, "params": list(params)}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        for p in self.update_together([p for p in group["params"] if p.grad is not None], group):
            self.update(p, p.grad, self.state_of(p), group)

    def update_together(self, params: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """Update those of ``params`` (all with gradients) that one call can take; return the rest, which
        :meth:`update` takes one by one."""
        return params

    def state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """``p``'s state, made (step 0, zero buffers) at its first update."""
        if p not in self.state:
            self.state[p] = {"step": torch.tensor(0.0), **{k: torch.zeros_like(p) for k in self.buffers}}
        return self.state[p]

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], group: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> StateDict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``, as torch writes it."""
        params = self.param_groups[0]["params"]
        index = {id(p): i for i, p in enumerate(params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()},
                "param_groups": [{**group, "params": list(range(len(params)))}]}

    def load_state_dict(self, state_dict: StateDict) -> None:
        """Take a state dict of this class or of its ``torch.optim`` counterpart (ValueError when it does not
        fit these parameters or sets a hyper-parameter this class does not apply)."""
        groups = state_dict["param_groups"]
        params = self.param_groups[0]["params"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError(f"optimiser state has {[len(g['params']) for g in groups]} parameters per group, "
                             f"this optimiser one group of {len(params)}")
        unsupported = {k: groups[0][k] for k, v in self.fixed.items()
                       if k in groups[0] and groups[0][k] != v and k not in IMPLEMENTATION}
        if unsupported:
            raise ValueError(f"optimiser state sets {unsupported}, which {type(self).__name__} does not apply")
        state = {}
        for i, saved in state_dict["state"].items():
            p = params[groups[0]["params"].index(i)]
            for k in self.buffers:
                if saved[k].shape != p.shape:
                    raise ValueError(f"optimiser state {k!r} of parameter {i} has shape {tuple(saved[k].shape)}, "
                                     f"the parameter {tuple(p.shape)}")
            # copies, so that two optimisers never share a buffer; the step count stays on the CPU (where torch
            # keeps it), as Adam reads it every update
            state[p] = {k: torch.tensor(float(v)) if k == "step" else v.to(p.device, p.dtype, copy=True)
                        for k, v in saved.items()}
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
        self.state = state


class RMSprop(Optimizer):
    """``torch.optim.RMSprop(params, lr, alpha, eps)``: v = alpha v + (1 - alpha) g^2, p -= lr g / (sqrt(v) + eps)."""

    fixed: ClassVar[dict[str, Any]] = {"momentum": 0, "centered": False, "weight_decay": 0, "capturable": False,
                                       "foreach": None, "maximize": False, "differentiable": False}
    buffers = ("square_avg",)

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], group: dict) -> None:
        state["step"] += 1
        square_avg = state["square_avg"].mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        p.addcdiv_(grad, square_avg.sqrt().add_(group["eps"]), value=-group["lr"])


class Adam(Optimizer):
    """``torch.optim.Adam(params, lr, betas, eps)``: bias-corrected first and second moments."""

    fixed: ClassVar[dict[str, Any]] = {"weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None,
                                       "capturable": False, "differentiable": False, "fused": None,
                                       "decoupled_weight_decay": False}
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps)

    def update_together(self, params: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """float32 parameters on a CPU take torch's fused kernel (``torch.optim.Adam(fused=True)``'s update: one
        pass over parameter, gradient and moments, where the single-tensor path makes seven; the speaker's 7.9M
        parameters in 2.6 ms instead of 12); the others are returned for the single-tensor path."""
        fused = [p for p in params if p.device.type == "cpu" and p.dtype == torch.float32]
        if fused:
            states = [self.state_of(p) for p in fused]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(fused, [p.grad for p in fused], [s["exp_avg"] for s in states],
                               [s["exp_avg_sq"] for s in states], [], steps, lr=group["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)
        return [p for p in params if not (p.device.type == "cpu" and p.dtype == torch.float32)]

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], group: dict) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = state["step"].item()
        denom = (state["exp_avg_sq"].sqrt() / (1 - beta2 ** step) ** 0.5).add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1 ** step))
