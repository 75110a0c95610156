"""Weight gradients of the layers a decoder applies at every step, computed once per rollout.

A follower rollout applies the same Linear layers (and LSTM cell weights) at each of its ~20-35 steps. Autograd
then computes each weight's gradient once per step, a (out x rows) @ (rows x in) product, and adds it to the
previous steps' sum: one small product and one full-size addition per weight and step. :class:`StepGrads`
computes the same sum in a few large products, handed to autograd once per rollout:

- each step's backward (``_StepLinear``) returns the gradient of its input only, and records the pair (input,
  output gradient) in the layer's :class:`_Pairs`, which folds them into the weight's gradient 256 rows at a
  time (a (out x 256) @ (256 x in) product: a fraction of the memory of keeping them all);
- the weight enters the graph once per rollout, through ``_Sink``, whose output (a zero scalar) every step takes
  as an extra input. Autograd runs a node after every node that feeds it a gradient, so ``_Sink``'s backward
  runs after the last step's, and returns ``sum_t g_t^T x_t`` (and ``sum_t g_t`` for the bias).

The gradients are those of the plain layers up to the order of the additions. Without gradients (evaluation),
or for a layer whose weight is frozen, :meth:`StepGrads.linear` is the plain layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Pairs:
    """One layer's (input, output gradient) pairs from the steps of one backward pass, folded into a running
    weight gradient every ``FLUSH_ROWS`` rows, so that they hold little memory while each product stays large."""

    FLUSH_ROWS = 256

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []
        self.rows = 0
        self.weight_grad: torch.Tensor | None = None
        self.bias_grad: torch.Tensor | None = None

    def add(self, x: torch.Tensor, g: torch.Tensor) -> None:
        self.inputs.append(x)
        self.grads.append(g)
        self.rows += len(x)
        if self.rows >= self.FLUSH_ROWS:
            self._fold()

    def _fold(self) -> None:
        x, g = torch.cat(self.inputs), torch.cat(self.grads)
        self.inputs, self.grads, self.rows = [], [], 0
        if self.weight_grad is None:
            self.weight_grad, self.bias_grad = g.t().mm(x), g.sum(0)
        else:
            self.weight_grad.addmm_(g.t(), x)
            self.bias_grad.add_(g.sum(0))

    def take(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The weight's and the bias's gradients over the pass, or None when no step reached the loss; then
        empty again (a second backward pass, with retain_graph, records its own)."""
        if self.inputs:
            self._fold()
        taken = None if self.weight_grad is None else (self.weight_grad, self.bias_grad)
        self.weight_grad = self.bias_grad = None
        return taken


class _Sink(torch.autograd.Function):
    """weight, bias -> a zero scalar that every step takes; its backward turns the recorded pairs into the
    weight's and the bias's gradients."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor | None, pairs: _Pairs) -> torch.Tensor:
        ctx.pairs, ctx.has_bias = pairs, bias is not None
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx, _token_grad: torch.Tensor):
        taken = ctx.pairs.take()
        if taken is None:
            return None, None, None
        weight_grad, bias_grad = taken
        return weight_grad, (bias_grad if ctx.has_bias else None), None


class _StepLinear(torch.autograd.Function):
    """x @ weight^T + bias for one step, with ``token`` (the layer's ``_Sink`` output) standing for the weight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, token: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                pairs: _Pairs) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.pairs = pairs
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        ctx.pairs.add(x, g)
        grad_x = g.mm(weight) if ctx.needs_input_grad[0] else None
        return grad_x, g.new_zeros(()), None, None, None


class StepGrads:
    """One rollout's deferred weight gradients: make one per rollout, and apply the per-step layers through it."""

    def __init__(self) -> None:
        self._layers: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, _Pairs]] = {}

    def matmul(self, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """``F.linear(x, weight, bias)``, its weight gradient deferred to the end of backward."""
        if not (torch.is_grad_enabled() and weight.requires_grad):
            return F.linear(x, weight, bias)
        key = id(weight)
        if key not in self._layers:
            pairs = _Pairs()
            self._layers[key] = (_Sink.apply(weight, bias, pairs), weight.detach(),
                                 None if bias is None else bias.detach(), pairs)
        token, w, b, pairs = self._layers[key]
        return _StepLinear.apply(x, token, w, b, pairs)

    def linear(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return self.matmul(layer.weight, layer.bias, x)

    def lstm_cell(self, cell: nn.LSTMCell, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cell(x, state)``: the gates' products through :meth:`matmul`, then the LSTM's own arithmetic (what
        ``torch.lstm_cell`` does on a CPU; on a GPU it fuses these into one kernel, so this costs a few more
        launches per step there, against two fewer per weight in backward: not measured)."""
        h, c = state
        gates = self.matmul(cell.weight_ih, cell.bias_ih, x) + self.matmul(cell.weight_hh, cell.bias_hh, h)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class PlainLayers:
    """The same calls as :class:`StepGrads`, made by the layers themselves."""

    @staticmethod
    def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return layer(x)

    @staticmethod
    def lstm_cell(cell: nn.LSTMCell, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return cell(x, state)


Layers = StepGrads | type[PlainLayers]  # what a decoder step applies its layers through
