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

A one-directional LSTM from the zero state whose per-step outputs are all that is wanted (the speaker's decoder
under teacher forcing) wastes hardly a step with :func:`end_to_end_lstm`: the sequences are laid end to end
in rows as long as the longest, with one step between two on which a second extra channel closes the input
and forget gates, so that the state after it is exactly zero, as at a sequence's start.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BIG = 1.0e4  # sigmoid(BIG) == 1 and sigmoid(-BIG) == 0 exactly in float32, float16 and bfloat16
# rows x steps x hidden units per call of masked_bilstm's LSTM (per direction): oneDNN's training workspace for
# more is over glibc's mmap threshold (32 MB at most), so it would be mapped afresh, page by page, at every call.
# Measured: a 256-unit BiLSTM over 64 rows of 121 steps (the follower on a fresh speaker's 120-word instructions),
# forward and backward, took 219 ms with 44,600 page faults, and as 4 calls of 16 rows 4 x 47 ms with none
ROW_STEP_UNITS = 2**19


def _with_gate_channel(weight_ih: torch.Tensor, hidden: int, forget: float) -> torch.Tensor:
    """weight_ih (4H, D) in PyTorch's gate order (input, forget, cell, output) -> (4H, D + 1): on the extra
    channel the input gate closes and the forget gate opens (``forget`` = BIG: the pad channel, the cell carries
    over unchanged) or closes (-BIG: the reset channel, c = f * c + i * g = 0 and h = o * tanh(c) = 0 exactly).
    Either way no gradient flows through the gates on that step (their derivatives are exactly 0)."""
    column = weight_ih.new_zeros(4 * hidden, 1)
    column[:hidden] = -BIG  # input gate
    column[hidden:2 * hidden] = forget  # forget gate
    return torch.cat([weight_ih, column], dim=1)


def _run_lstm(x: torch.Tensor, params: list[torch.Tensor], hidden: int, bidirectional: bool,
              training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch-first, one-layer ``torch.lstm`` call from the zero state: outputs and final cells."""
    zeros = x.new_zeros(2 if bidirectional else 1, x.shape[0], hidden)
    with warnings.catch_warnings():
        # cuDNN packs these weights (one of each direction widened by an extra channel) into its flat buffer at
        # every call, and warns that the module's weights are not one chunk: they cannot be, and the copy is small
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        out, _, c_n = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, training, bidirectional, True)
    return out, c_n


def end_to_end_lstm(lstm: nn.LSTM, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run the one-layer, batch-first, one-directional ``lstm`` from the zero state over each of B sequences given
    one after another as ``tokens`` (N, D), ``lengths`` (B,) summing to N: the outputs (N, H), in the same order.

    The sequences are laid end to end in rows as long as the longest (first fit, longest first), the next one
    starting after a step whose reset channel (:func:`_with_gate_channel`) zeroes the state: one dense call, no
    padding but the rows' ends. A batch of 64 R2R instructions (1,956 words, the longest 64) ran as 32 rows of 64
    steps, about 30% fewer steps than 4 length groups of 16 rows, and the speaker's LSTM pass (forward and
    backward) took 88-90 ms against 108-110. The outputs and gradients are those of one call per sequence.
    """
    assert not lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1 and lstm.bias, \
        "end_to_end_lstm takes a one-layer, batch-first, one-directional nn.LSTM with biases"
    sizes = lengths.tolist()
    assert min(sizes) >= 1 and sum(sizes) == tokens.shape[0], f"lengths {sizes} do not cover {tokens.shape[0]} tokens"
    span, used = max(sizes), []  # used: the steps taken in each row
    starts = np.zeros(len(sizes), dtype=np.int64)  # each sequence's first position in the (rows x span) grid
    for b in sorted(range(len(sizes)), key=lambda b: -sizes[b]):
        row = next((r for r, n in enumerate(used) if n + 1 + sizes[b] <= span), len(used))
        if row == len(used):
            used.append(-1)  # a new row: no reset step before its first sequence
        starts[b] = row * span + used[row] + 1
        used[row] += 1 + sizes[b]
    rows, hidden = len(used), lstm.hidden_size
    positions = np.repeat(starts - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(sum(sizes))
    resets = starts[starts % span > 0] - 1
    at = torch.from_numpy(positions).to(tokens.device)
    grid = tokens.new_zeros(rows * span, tokens.shape[1]).index_copy(0, at, tokens)
    reset = tokens.new_zeros(rows * span, 1)
    reset[torch.from_numpy(resets).to(tokens.device)] = 1.0
    params = [_with_gate_channel(lstm.weight_ih_l0, hidden, -BIG), lstm.weight_hh_l0, lstm.bias_ih_l0,
              lstm.bias_hh_l0]
    out, _ = _run_lstm(torch.cat([grid, reset], dim=1).view(rows, span, -1), params, hidden, False, lstm.training)
    return out.reshape(rows * span, hidden).index_select(0, at)  # (N, H)


def take_rows(index: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """``t[index]`` along dim 0 for each tensor, by ``index_select``: the same values and gradients, but its
    backward adds the gradient rows in place (``index_add_``), where advanced indexing's scatters them into a
    zero tensor with an accumulating ``index_put``, 3-4x slower on a CPU for the decoder's (64, 80, 512) contexts."""
    return [t.index_select(0, index) for t in tensors]


def masked_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor,
                  groups: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the one-layer, batch-first, bidirectional ``lstm`` over the first ``lengths[b]`` steps of each row.

    x (B, T, D), lengths (B,) with 1 <= lengths <= T. Returns out (B, T, 2H), zero on padding, and the final
    cells c_n (2, B, H) (forward, backward), the same as ``lstm`` on ``pack_padded_sequence(x, lengths)``.
    Rows run in up to ``groups`` groups of similar length when that saves a quarter of the steps.
    """
    assert lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1 and lstm.bias, \
        "masked_bilstm takes a one-layer, batch-first, bidirectional nn.LSTM with biases"
    T, lengths = x.shape[1], lengths.to(x.device)
    plan = LengthGroups.plan(lengths, T, groups)
    if plan is None:
        return _dense_in_blocks(lstm, x, lengths)
    runs = [_dense_in_blocks(lstm, part, lengths[rows]) for part, (rows, _) in zip(plan.split(x), plan.groups)]
    return plan.restore([out for out, _ in runs], T), torch.cat([c for _, c in runs], dim=1).index_select(1, plan.back)


def _block_rows(steps: int, hidden: int) -> int:
    """How many rows of ``steps`` steps one torch.lstm call takes (:data:`ROW_STEP_UNITS`)."""
    return max(1, ROW_STEP_UNITS // (steps * hidden))


def _dense_in_blocks(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_dense` over blocks of rows (:func:`_block_rows`); the rows are independent."""
    rows = _block_rows(x.shape[1], lstm.hidden_size)
    if x.shape[0] <= rows:
        return _dense(lstm, x, lengths)
    runs = [_dense(lstm, part, n) for part, n in zip(x.split(rows), lengths.split(rows))]
    return torch.cat([out for out, _ in runs]), torch.cat([c for _, c in runs], dim=1)


@dataclass
class LengthGroups:
    """Rows sorted by length and cut into groups, each to be run only as long as its longest row.

    ``groups`` holds (row indices, span) in descending length order; :meth:`restore` puts the groups' outputs
    (each (rows, span, ...)) back into one (B, T, ...) tensor in the original row order, zero past each span.
    """

    groups: list[tuple[torch.Tensor, int]]
    back: torch.Tensor  # position of each original row in the sorted order

    @classmethod
    def plan(cls, lengths: torch.Tensor, steps: int, groups: int = 4, saving: float = 0.25) -> LengthGroups | None:
        """Up to ``groups`` groups of rows for ``lengths`` (B,) padded to ``steps``, or None when grouping would
        save less than ``saving`` of the steps, or the batch is too small to split, or the sequences too short
        (under 16 steps, such as a speaker's paths, a call's fixed cost outweighs what padding costs)."""
        B = lengths.shape[0]
        if groups < 2 or B < 2 * groups or steps < 16:
            return None
        order = torch.sort(lengths, descending=True, stable=True).indices
        chunks = order.chunk(groups)
        spans = lengths[torch.stack([rows[0] for rows in chunks])].tolist()  # a group's longest row is first; one
        parts = list(zip(chunks, spans))  # transfer from a GPU, not one per group
        if sum(len(rows) * span for rows, span in parts) > (1.0 - saving) * B * steps:
            return None
        back = torch.empty_like(order)
        back[order] = torch.arange(B, device=order.device)
        return cls(parts, back)

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each group's rows of ``x`` (B, T, ...), cut to the group's span: what :meth:`restore` takes back."""
        return [x[:, :span].index_select(0, rows) for rows, span in self.groups]

    def restore(self, outputs: list[torch.Tensor], steps: int) -> torch.Tensor:
        padded = [F.pad(out, (0, 0) * (out.dim() - 2) + (0, steps - out.shape[1])) for out in outputs]
        return torch.cat(padded).index_select(0, self.back)


def _dense(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One dense ``torch.lstm`` call over the padded batch, the pad channel freezing each row past its end."""
    T, hidden = x.shape[1], lstm.hidden_size
    valid = torch.arange(T, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    pad = (~valid).unsqueeze(-1).to(x.dtype)
    params = []
    for suffix in ("", "_reverse"):
        params += [_with_gate_channel(getattr(lstm, "weight_ih_l0" + suffix), hidden, BIG),
                   getattr(lstm, "weight_hh_l0" + suffix),
                   getattr(lstm, "bias_ih_l0" + suffix), getattr(lstm, "bias_hh_l0" + suffix)]
    out, c_n = _run_lstm(torch.cat([x, pad], dim=-1), params, hidden, True, lstm.training)
    return out * valid.unsqueeze(-1).to(out.dtype), c_n
