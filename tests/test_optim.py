"""``agents.optim``: torch.optim's RMSprop and Adam arithmetic, its state dicts both ways, and no torch._dynamo."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.optim import Adam, RMSprop

PAIRS = [(RMSprop, torch.optim.RMSprop, {"lr": 3e-3, "alpha": 0.95, "eps": 1e-6}),
         (Adam, torch.optim.Adam, {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6})]


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(10, 6), torch.nn.Linear(6, 4), torch.nn.Linear(4, 3))


def set_grads(m: torch.nn.Module, step: int) -> None:
    """Gradients over six orders of magnitude (so eps matters), and none for the last layer every third step."""
    generator = torch.Generator().manual_seed(step)
    for i, p in enumerate(m.parameters()):
        p.grad = None if (i >= 3 and step % 3 == 2) else torch.randn(p.shape, generator=generator, dtype=p.dtype) * 10.0 ** (i - 3)


def train(m: torch.nn.Module, optimizer, steps: range) -> None:
    for step in steps:
        optimizer.zero_grad()
        set_grads(m, step)
        optimizer.step()


def same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("ours, theirs, hyper", PAIRS, ids=["RMSprop", "Adam"])
def test_updates_are_torch_optims(ours, theirs, hyper):
    a, b = model(), model()
    train(a, ours(a.parameters(), **hyper), range(8))
    train(b, theirs(b.parameters(), **hyper), range(8))
    same(a, b)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), model().parameters()))  # they did move


def test_adam_on_a_cpu_is_torchs_fused_adam_exactly():
    """float32 CPU parameters take torch's fused kernel: bit for bit ``torch.optim.Adam(fused=True)``; a float64
    parameter in the same optimiser takes the single-tensor path (checked against torch's above)."""
    hyper = PAIRS[1][2]
    a, b = model(), model()
    train(a, Adam(a.parameters(), **hyper), range(8))
    train(b, torch.optim.Adam(b.parameters(), fused=True, **hyper), range(8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    a, b = model().double(), model().double()
    train(a, Adam(a.parameters(), **hyper), range(8))
    train(b, torch.optim.Adam(b.parameters(), foreach=False, **hyper), range(8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("ours, theirs, hyper", PAIRS, ids=["RMSprop", "Adam"])
def test_state_dicts_move_between_ours_and_torchs(ours, theirs, hyper):
    """A checkpoint written by either class continues in the other exactly as in its own."""
    for first, second in ((ours, theirs), (theirs, ours)):
        a, b = model(), model()
        opt_a = first(a.parameters(), **hyper)
        train(a, opt_a, range(4))
        b.load_state_dict(a.state_dict())
        opt_b = second(b.parameters(), lr=1.0)  # the loaded state sets the hyper-parameters
        opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as through a file: torch's keeps references
        assert opt_b.param_groups[0]["lr"] == hyper["lr"]
        train(a, opt_a, range(4, 8))
        train(b, opt_b, range(4, 8))
        same(a, b)


def test_states_it_cannot_continue_are_refused():
    m = model()
    with_momentum = torch.optim.RMSprop(m.parameters(), lr=1e-3, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="momentum"):
        RMSprop(m.parameters()).load_state_dict(with_momentum)
    foreach = torch.optim.RMSprop(m.parameters(), foreach=True).state_dict()  # how torch computes, not what
    RMSprop(m.parameters()).load_state_dict(foreach)
    fewer = RMSprop(list(m.parameters())[:2]).state_dict()
    with pytest.raises(ValueError, match="one group of 5"):
        RMSprop(m.parameters()).load_state_dict(fewer)
    other = model()
    other[1] = torch.nn.Linear(6, 5)
    opt = Adam(other.parameters())
    train(other, opt, range(1))
    with pytest.raises(ValueError, match="shape"):
        Adam(m.parameters()).load_state_dict(opt.state_dict())


@pytest.mark.slow
def test_a_training_run_does_not_import_dynamo(tiny_world, tmp_path):
    """The point of the module: torch.optim imports torch._dynamo (110-200 MB resident); a whole
    back-translation run (speaker, follower, evaluation, TensorBoard, checkpoints) must not."""
    script = ("import sys; from agents import train; "
              f"code = train.main(['r2r', '--data-dir', {str(tiny_world)!r}, '--out', {str(tmp_path / 'run')!r}, "
              "'--batch-size', '4', '--eval-every', '2', '--quiet', '--backtranslate', '--speaker-iters', '2', "
              "'--iters', '2', '--bt-iters', '2', '--aug-paths-per-scan', '5']); "
              "print('rc', code, 'dynamo', 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.stdout.strip().splitlines()[-1:] == ["rc 0 dynamo False"], done.stderr[-2000:]
