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

The instruction's word contexts (B, L, H), which every step's attention reads, get the same treatment
(:class:`DeferredContext`): autograd would add each step's two outer products (the scores' and the weighted
sum's, (B, L, H) each) into the contexts' gradient, and scatter the rows of the batch that had shrunk back into
a zero tensor at every step where rows finished; instead each step records its (rows, score gradient, query,
attention, output gradient), and one batched product per rollout makes the gradient.

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


class _Reads:
    """The steps' records of one :class:`DeferredContext`: what its gradient is made of."""

    def __init__(self, shape: torch.Size) -> None:
        self.shape = shape  # (B, L, H): the whole batch's contexts
        self.steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def gradient(self) -> torch.Tensor | None:
        """sum over steps and their rows of ``ds (x) q + attention (x) g``: one (B, L, 2n) x (B, 2n, H) product
        over the n steps recorded, each step's rows written into the batch's; then empty again."""
        steps, self.steps = self.steps, []
        if not steps:
            return None
        B, L, H = self.shape
        first = steps[0][1]
        weights = first.new_zeros(B, 2 * len(steps), L)  # per step: the score gradient, then the attention
        vectors = first.new_zeros(B, 2 * len(steps), H)  # per step: the query, then the output gradient
        for i, (rows, ds, q, attn, g) in enumerate(steps):
            weights[:, 2 * i].index_copy_(0, rows, ds)
            weights[:, 2 * i + 1].index_copy_(0, rows, attn)
            vectors[:, 2 * i].index_copy_(0, rows, q)
            vectors[:, 2 * i + 1].index_copy_(0, rows, g)
        return torch.bmm(weights.transpose(1, 2), vectors)  # (B, L, H)


class _ContextSink(torch.autograd.Function):
    """The contexts -> a zero scalar that every step's attention takes; its backward makes their gradient."""

    @staticmethod
    def forward(ctx, context: torch.Tensor, reads: _Reads) -> torch.Tensor:
        ctx.reads = reads
        return context.new_zeros(())

    @staticmethod
    def backward(ctx, _token_grad: torch.Tensor):
        return ctx.reads.gradient(), None


class _StepAttention(torch.autograd.Function):
    """Attention of queries q (b, H) over rows of the contexts (b, L, H) (masked (b, L)): the weighted sum (b, H)
    and the attention (b, L). Backward gives q's gradient and records the contexts' share in ``reads``."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None, token: torch.Tensor,
                rows: torch.Tensor, reads: _Reads) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.bmm(context, q.unsqueeze(2)).squeeze(2)  # (b, L)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        ctx.save_for_backward(q, context, attn, rows)
        ctx.reads = reads
        return torch.bmm(attn.unsqueeze(1), context).squeeze(1), attn

    @staticmethod
    def backward(ctx, g: torch.Tensor, g_attn: torch.Tensor | None):
        q, context, attn, rows = ctx.saved_tensors
        d_attn = torch.bmm(context, g.unsqueeze(2)).squeeze(2)  # (b, L)
        if g_attn is not None:
            d_attn = d_attn + g_attn
        ds = attn * (d_attn - (attn * d_attn).sum(1, keepdim=True))  # softmax's backward; 0 where masked
        ctx.reads.steps.append((rows, ds, q, attn, g))
        return torch.bmm(ds.unsqueeze(1), context).squeeze(1), None, None, g.new_zeros(()), None, None


class DeferredContext:
    """Word contexts (B, L, H) read by every step of a rollout, their gradient made once (:class:`StepGrads`).

    It stands in for the contexts tensor in a decoder step: :meth:`index_select` along rows keeps the batch's
    rows that are still running (as :func:`~agents.masked_lstm.take_rows` does to tensors), and
    :class:`~agents.follower.SoftDotAttention` attends over it with :meth:`attend`.
    """

    def __init__(self, values: torch.Tensor, rows: torch.Tensor, token: torch.Tensor, reads: _Reads) -> None:
        self.values, self.rows, self.token, self.reads = values, rows, token, reads  # values: detached rows

    @classmethod
    def of(cls, context: torch.Tensor) -> DeferredContext:
        reads = _Reads(context.shape)
        rows = torch.arange(context.shape[0], device=context.device)
        return cls(context.detach(), rows, _ContextSink.apply(context, reads), reads)

    def index_select(self, dim: int, index: torch.Tensor) -> DeferredContext:
        assert dim == 0, "a DeferredContext keeps rows (dim 0)"
        return DeferredContext(self.values.index_select(0, index), self.rows[index], self.token, self.reads)

    def attend(self, q: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """q (b, H), already through the attention's W_in -> weighted contexts (b, H), attention (b, L)."""
        return _StepAttention.apply(q, self.values, mask, self.token, self.rows, self.reads)


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

    @staticmethod
    def context(context: torch.Tensor) -> torch.Tensor | DeferredContext:
        """What the steps attend over in place of ``context`` (B, L, H): a :class:`DeferredContext` when its
        gradient is wanted."""
        return DeferredContext.of(context) if torch.is_grad_enabled() and context.requires_grad else context

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
    def context(context: torch.Tensor) -> torch.Tensor:
        return context

    @staticmethod
    def lstm_cell(cell: nn.LSTMCell, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return cell(x, state)


Layers = StepGrads | type[PlainLayers]  # what a decoder step applies its layers through
