"""masked_bilstm gives what nn.LSTM gives on a packed sequence: outputs, final cells and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from agents.masked_lstm import end_to_end_lstm, masked_bilstm, take_rows

B, T, D, H = 6, 9, 5, 4


def packed_bilstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor):
    out, (_, c_n) = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], c_n


def outputs_and_gradients(run, lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor):
    lstm.zero_grad()
    x = x.detach().requires_grad_()
    out, c_n = run(lstm, x, lengths)
    g = torch.Generator().manual_seed(1)  # the same random loss weights for both runs
    loss = (out * torch.randn(out.shape, generator=g)).sum() + (c_n * torch.randn(c_n.shape, generator=g)).sum()
    loss.backward()
    return [out, c_n, x.grad] + [p.grad for p in lstm.parameters()]


@pytest.mark.parametrize("units", [2**19, 2 * T * H])  # one torch.lstm call, or blocks of 2 rows
@pytest.mark.parametrize("lengths", [[9, 1, 4, 9, 2, 7], [3, 3, 3, 3, 3, 3], [9] * 6])
def test_equals_packed_run(lengths, units, monkeypatch):
    import agents.masked_lstm as module

    monkeypatch.setattr(module, "ROW_STEP_UNITS", units)
    torch.manual_seed(0)
    lstm = nn.LSTM(D, H, batch_first=True, bidirectional=True)
    x, lengths = torch.randn(B, T, D) * 3, torch.tensor(lengths)
    x[torch.arange(T) >= lengths.unsqueeze(1)] = torch.randn(1, D) * 5  # padding holds garbage, not zeros
    expected = outputs_and_gradients(packed_bilstm, lstm, x, lengths)
    got = outputs_and_gradients(masked_bilstm, lstm, x, lengths)
    names = ["out", "c_n", "x.grad"] + [name for name, _ in lstm.named_parameters()]
    for name, a, b in zip(names, expected, got):
        assert torch.allclose(a, b, atol=1e-5), f"{name} differs by {float((a - b).abs().max())}"
    padding = torch.arange(T) >= lengths.unsqueeze(1)
    assert torch.equal(got[0][padding], torch.zeros_like(got[0][padding]))
    assert torch.equal(got[2][padding], torch.zeros_like(got[2][padding]))  # padding gets no gradient


def test_length_groups_equal_the_packed_run(monkeypatch):
    import agents.masked_lstm as module

    torch.manual_seed(0)
    lstm = nn.LSTM(D, H, batch_first=True, bidirectional=True)
    lengths = torch.tensor([2, 17, 1, 5, 20, 3, 3, 9, 2, 1, 4, 6, 2, 3, 11, 1])  # mostly short, a few long
    x = torch.randn(len(lengths), 20, D) * 3
    x[torch.arange(20) >= lengths.unsqueeze(1)] = torch.randn(1, D) * 5
    calls = []
    dense = module._dense
    monkeypatch.setattr(module, "_dense", lambda *a: calls.append(a[1].shape) or dense(*a))
    expected = outputs_and_gradients(packed_bilstm, lstm, x, lengths)
    got = outputs_and_gradients(masked_bilstm, lstm, x, lengths)
    assert [shape[:2] for shape in calls] == [(4, 20), (4, 6), (4, 3), (4, 2)]  # four groups, each as long as its longest
    names = ["out", "c_n", "x.grad"] + [name for name, _ in lstm.named_parameters()]
    for name, a, b in zip(names, expected, got):
        assert torch.allclose(a, b, atol=1e-5), f"{name} differs by {float((a - b).abs().max())}"
    calls.clear()
    masked_bilstm(lstm, x, torch.full((16,), 20))  # equal lengths: nothing to save, one dense call
    masked_bilstm(lstm, x[:, :15], lengths.clamp(max=15))  # short sequences: one dense call
    assert len(calls) == 2


def test_keeps_the_lstm_parameters_and_eval_mode():
    lstm = nn.LSTM(D, H, batch_first=True, bidirectional=True).eval()
    before = {k: v.clone() for k, v in lstm.state_dict().items()}
    with torch.no_grad():
        out, c_n = masked_bilstm(lstm, torch.randn(B, T, D), torch.full((B,), T))
    assert out.shape == (B, T, 2 * H) and c_n.shape == (2, B, H)
    assert before.keys() == lstm.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in lstm.state_dict().items())


def test_take_rows_equals_indexing_in_values_and_gradients():
    """take_rows is t[index] for every tensor, repeated rows included (their gradients add up)."""
    torch.manual_seed(0)
    a, b = torch.randn(5, 3, 4, requires_grad=True), torch.randn(5, 2, requires_grad=True)
    index = torch.tensor([4, 0, 4, 2])  # row 4 twice, rows 1 and 3 never
    weights = torch.randn(4, 3, 4), torch.randn(4, 2)
    expected = [a[index], b[index]]
    got = take_rows(index, a, b)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    grads_expected = torch.autograd.grad(sum((e * w).sum() for e, w in zip(expected, weights)), (a, b))
    grads_got = torch.autograd.grad(sum((g * w).sum() for g, w in zip(got, weights)), (a, b))
    for e, g in zip(grads_expected, grads_got):
        assert torch.allclose(e, g, atol=1e-6)
    assert torch.equal(grads_got[1][1], torch.zeros(2)) and not torch.equal(grads_got[1][4], torch.zeros(2))


@pytest.mark.parametrize("lengths", [[9, 1, 4, 9, 2, 7, 3, 3, 5, 1], [3, 3, 3, 3], [12], [1, 1, 1, 1, 1, 12]])
def test_end_to_end_equals_one_run_per_sequence(lengths):
    """Sequences laid end to end with a reset step between two: each one's outputs and every gradient are those
    of running it alone from the zero state, and rows are shared (fewer than one per sequence) where they fit."""
    torch.manual_seed(0)
    lstm = nn.LSTM(D, H, batch_first=True)
    tokens = torch.randn(sum(lengths), D) * 3
    weights = torch.randn(sum(lengths), H)  # random loss weights on every output

    def gradients(run):
        lstm.zero_grad()
        x = tokens.clone().requires_grad_()
        out = run(x)
        (out * weights).sum().backward()
        return [out, x.grad] + [p.grad.clone() for p in lstm.parameters()]

    rows = []
    calls = torch.lstm

    def counting(x, *args):
        rows.append(x.shape[0])
        return calls(x, *args)

    expected = gradients(lambda x: torch.cat([lstm(part.unsqueeze(0))[0][0] for part in x.split(lengths)]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "lstm", counting)
        got = gradients(lambda x: end_to_end_lstm(lstm, x, torch.tensor(lengths)))
    names = ["out", "x.grad"] + [name for name, _ in lstm.named_parameters()]
    for name, a, b in zip(names, expected, got):
        assert torch.allclose(a, b, atol=1e-5), f"{name} differs by {float((a - b).abs().max())}"
    assert len(rows) == 1 and (rows[0] < len(lengths) or len(set(lengths)) == 1), rows
