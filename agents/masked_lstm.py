"""A bidirectional LSTM over padded sequences that gives what a packed sequence gives, in one dense call.

``pack_padded_sequence`` is exact but slow on a CPU: its backward pass accumulates over a shrinking batch step
by step (about 2x the dense time for EnvDrop's encoder at batch 64). Here the LSTM runs densely over the whole
padded tensor with one extra input channel, 1 on padding and 0 on real steps, whose weights push the forget
gate to +BIG and the input gate to -BIG. In float32 those gates are then exactly 1 and 0 on padding, so

- the forward direction keeps its cell unchanged across the trailing padding: its last cell is the cell of
  the last real step, as a packed run returns;
- the backward direction starts at the end of the padding with zero state and keeps it exactly zero (cell 0,
  hidden ``o * tanh(0) = 0``) until the first real step from the end, as a packed run starts there;
- no gradient flows through padding (the gate derivatives ``s * (1 - s)`` are exactly 0 there), and the
  channel adds exactly 0 on real steps, so outputs and gradients equal the packed ones up to rounding.

The weights are the ``nn.LSTM``'s own (the channel is appended per call), so state dicts are unchanged.

Padding still costs arithmetic: a batch of 64 real R2R instructions averages 31 tokens against a longest of
about 70, so a dense run spends over half its time on padding. Rows are therefore sorted by length and run in
a few groups (``groups``, 4 by default), each only as long as its own longest row, when that saves at least a
quarter of the steps. The rows are independent, so grouping changes nothing but the time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BIG = 1.0e4  # sigmoid(BIG) == 1 and sigmoid(-BIG) == 0 exactly in float32, float16 and bfloat16


def _with_pad_channel(weight_ih: torch.Tensor, hidden: int) -> torch.Tensor:
    """weight_ih (4H, D) in PyTorch's gate order (input, forget, cell, output) -> (4H, D + 1)."""
    column = weight_ih.new_zeros(4 * hidden, 1)
    column[:hidden] = -BIG  # input gate closed on padding
    column[hidden:2 * hidden] = BIG  # forget gate open: the cell carries over unchanged
    return torch.cat([weight_ih, column], dim=1)


def masked_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor,
                  groups: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the one-layer, batch-first, bidirectional ``lstm`` over the first ``lengths[b]`` steps of each row.

    x (B, T, D), lengths (B,) with 1 <= lengths <= T. Returns out (B, T, 2H), zero on padding, and the final
    cells c_n (2, B, H) (forward, backward), the same as ``lstm`` on ``pack_padded_sequence(x, lengths)``.
    Rows run in up to ``groups`` groups of similar length when that saves a quarter of the steps.
    """
    assert lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1 and lstm.bias, \
        "masked_bilstm takes a one-layer, batch-first, bidirectional nn.LSTM with biases"
    B, T, _ = x.shape
    lengths = lengths.to(x.device)
    if groups > 1 and B >= 2 * groups:
        order = torch.sort(lengths, descending=True, stable=True).indices
        parts = order.chunk(groups)
        spans = [int(lengths[q[0]]) for q in parts]  # each group's longest row comes first
        if sum(len(q) * span for q, span in zip(parts, spans)) <= 0.75 * B * T:
            runs = [_dense(lstm, x[q, :span], lengths[q]) for q, span in zip(parts, spans)]
            out = torch.cat([F.pad(o, (0, 0, 0, T - o.shape[1])) for o, _ in runs])  # rows in sorted order
            c_n = torch.cat([c for _, c in runs], dim=1)
            back = torch.empty_like(order)
            back[order] = torch.arange(B, device=order.device)
            return out[back], c_n[:, back]
    return _dense(lstm, x, lengths)


def _dense(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One dense ``torch.lstm`` call over the padded batch, the pad channel freezing each row past its end."""
    B, T, _ = x.shape
    hidden = lstm.hidden_size
    valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    pad = (~valid).unsqueeze(-1).to(x.dtype)
    params = []
    for suffix in ("", "_reverse"):
        params += [_with_pad_channel(getattr(lstm, "weight_ih_l0" + suffix), hidden),
                   getattr(lstm, "weight_hh_l0" + suffix),
                   getattr(lstm, "bias_ih_l0" + suffix), getattr(lstm, "bias_hh_l0" + suffix)]
    zeros = x.new_zeros(2, B, hidden)
    out, _, c_n = torch.lstm(torch.cat([x, pad], dim=-1), (zeros, zeros), params, True, 1, 0.0, lstm.training,
                             True, True)
    return out * valid.unsqueeze(-1).to(out.dtype), c_n
