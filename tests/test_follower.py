"""The follower model: shapes, STOP as the zero candidate, masking, padding invariance, EnvDrop checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from agents.follower import (Follower, FollowerConfig, angle_feature, load_envdrop_follower,
                             make_follower_optimizers)
from agents.masked_lstm import take_rows
from agents.optim import RMSprop

B, L, K, D = 3, 7, 5, 24


def make(**kw) -> Follower:
    torch.manual_seed(0)
    return Follower(FollowerConfig(vocab_size=20, feature_dim=D, **kw))


def instructions() -> torch.Tensor:
    instr = torch.randint(4, 20, (B, L))
    instr[0, 5:] = 0  # shorter instructions are padded with 0
    instr[1, 3:] = 0
    return instr


def step(f: Follower, instr: torch.Tensor):
    ctx, ctx_mask, h_tilde, c = f.encoder(instr)
    views = torch.randn(B, 36, D + 128)
    cands = torch.randn(B, K, D + 128)
    prev = angle_feature(torch.zeros(B), torch.zeros(B))
    return ctx, ctx_mask, f.decoder(prev, views, cands, h_tilde, c, ctx, ctx_mask)


def test_shapes():
    f = make()
    ctx, ctx_mask, (h, c, h_tilde, logits) = step(f, instructions())
    assert ctx.shape == (B, L, 512) and ctx_mask.shape == (B, L)
    assert ctx_mask[0].tolist() == [False] * 5 + [True] * 2
    assert h.shape == c.shape == h_tilde.shape == (B, 512)
    assert logits.shape == (B, K)
    assert f.critic(h).shape == (B,)


def test_stop_logit_is_zero_and_mask_applies():
    f = make()
    cand_logits = torch.randn(B, K)
    mask = torch.ones(B, K + 1, dtype=torch.bool)
    mask[0, 3:] = False
    logits = f.action_logits(cand_logits, mask)
    assert torch.equal(logits[:, 0], torch.zeros(B))  # STOP: the all-zero candidate's bilinear score
    assert torch.isinf(logits[0, 3:]).all() and torch.equal(logits[1, 1:], cand_logits[1])


def test_zero_candidate_scores_zero():
    f = make().eval()
    ctx, ctx_mask, h_tilde, c = f.encoder(instructions())
    cands = torch.zeros(B, K, D + 128)
    *_, logits = f.decoder(angle_feature(torch.zeros(B), torch.zeros(B)), torch.randn(B, 36, D + 128), cands,
                           h_tilde, c, ctx, ctx_mask)
    assert torch.equal(logits, torch.zeros(B, K))


def test_encoder_ignores_padding():
    f = make().eval()
    instr = instructions()
    longer = torch.cat([instr, torch.zeros(B, 10, dtype=torch.long)], 1)  # more padding changes nothing
    a, b = f.encoder(instr), f.encoder(longer)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-6)


def test_feature_dropout_only_in_training_and_not_on_angles():
    from agents.envdrop import drop_image_features
    x = torch.ones(B, 36, D + 128)
    torch.manual_seed(0)
    y = drop_image_features(x, 0.5, D, training=True)
    assert torch.equal(y[..., D:], x[..., D:])  # angle dims untouched
    assert set(y[..., :D].unique().tolist()) == {0.0, 2.0}  # element-wise inverted dropout
    assert torch.equal(drop_image_features(x, 0.5, D, training=False), x)
    assert torch.equal(x, torch.ones_like(x))  # the caller's features are left alone by default
    own = x.clone()
    torch.manual_seed(0)
    assert drop_image_features(own, 0.5, D, training=True, inplace=True) is own
    assert torch.equal(own, y)  # in place: the same mask, written into the caller's tensor
    f = make().eval()
    instr = instructions()
    torch.manual_seed(1)
    first = step(f, instr)[2][3]
    torch.manual_seed(1)
    assert torch.equal(first, step(f, instr)[2][3])  # eval mode: no dropout anywhere


def test_decoder_overwriting_its_features_gives_the_same_step():
    """``overwrite_features``: feature dropout writes into the caller's views and candidates (the rollout's
    fresh observations) and the step's outputs are those of the copying path with the same draws."""
    f = make().train()
    ctx, ctx_mask, h_tilde, c = f.encoder(instructions())
    views, cands = torch.randn(B, 36, D + 128), torch.randn(B, K, D + 128)
    prev = angle_feature(torch.zeros(B), torch.zeros(B))
    torch.manual_seed(3)
    copied = f.decoder(prev, views, cands, h_tilde, c, ctx, ctx_mask)
    own_views, own_cands = views.clone(), cands.clone()
    torch.manual_seed(3)
    overwritten = f.decoder(prev, own_views, own_cands, h_tilde, c, ctx, ctx_mask, overwrite_features=True)
    for x, y in zip(copied, overwritten):
        assert torch.equal(x, y)
    assert not torch.equal(own_views, views) and torch.equal(own_views[..., D:], views[..., D:])


@pytest.mark.parametrize("p", [0.3, 0.5, 0.05])
def test_keep_mask_drops_with_probability_p(p):
    """16-bit draws: over 2 million elements the dropped share is p to sampling noise (sd ~3e-4), kept ones
    are scaled by 1 / (1 - p), and masks differ from draw to draw."""
    from agents.envdrop import keep_mask
    torch.manual_seed(0)
    mask = keep_mask((64, 36, 907), p)
    assert mask.shape == (64, 36, 907) and mask.dtype == torch.float32
    assert torch.equal(mask.unique(), torch.tensor([0.0, 1 / (1 - p)]))
    assert abs(float((mask == 0).float().mean()) - p) < 2e-3
    assert abs(float(mask.mean()) - 1.0) < 5e-3  # inverted dropout keeps the expectation
    assert not torch.equal(mask, keep_mask((64, 36, 907), p))
    odd = keep_mask((3, 5), p)  # sizes that are not a multiple of four
    assert odd.shape == (3, 5)
    lanes = (mask.flatten()[:2**21] == 0).float().view(-1, 4).mean(0)  # the four draws each word makes
    assert (lanes - p).abs().max() < 3e-3, lanes
    torch.manual_seed(7)
    again = keep_mask((64, 36, 907), p)
    torch.manual_seed(7)
    assert torch.equal(again, keep_mask((64, 36, 907), p))  # torch's seed fixes the mask


def test_angle_feature_layout():
    a = angle_feature(torch.tensor([math.pi / 2]), torch.tensor([0.0]))
    assert a.shape == (1, 128)
    assert torch.allclose(a[0, :4], torch.tensor([1.0, 0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.equal(a[0, :4], a[0, 124:])


def test_optimizers_and_envdrop_snapshot_round_trip():
    f = make()
    opts = make_follower_optimizers(f)
    assert set(opts) == {"encoder", "decoder", "critic"}
    assert all(isinstance(o, RMSprop) for o in opts.values())
    snapshot = {name: {"state_dict": getattr(f, name).state_dict()} for name in ("encoder", "decoder", "critic")}
    snapshot["decoder"]["state_dict"]["candidate_att_layer.linear_out.weight"] = torch.zeros(1)  # unused there
    g = make(dropout=0.1)
    with torch.no_grad():
        for p in g.parameters():
            p.zero_()
    unused = load_envdrop_follower(g, snapshot)
    assert unused == ["decoder.candidate_att_layer.linear_out.weight"]
    assert all(torch.equal(p, q) for p, q in zip(f.parameters(), g.parameters()))
    with pytest.raises(ValueError, match="lacks"):
        load_envdrop_follower(g, {"encoder": {"state_dict": {}}, "decoder": snapshot["decoder"],
                                  "critic": snapshot["critic"]})


def test_config_asserts():
    with pytest.raises(AssertionError, match="even"):
        FollowerConfig(vocab_size=10, feature_dim=8, hidden_dim=511)


def rollout_gradients(layers_for_rollout) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A 4-step decoder rollout whose batch shrinks (rows finish), as a training rollout runs it: the loss and
    every parameter's gradient, with the decoder's layers applied through ``layers_for_rollout()``."""
    f = make(dropout=0.0, feature_dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    instr = torch.randint(4, 20, (6, L), generator=generator)
    ctx, ctx_mask, h_tilde, c = f.encoder(instr)
    layers, loss, prev = layers_for_rollout(), 0.0, angle_feature(torch.zeros(6), torch.zeros(6))
    ctx = layers.context(ctx)
    for keep in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [0, 2, 3, 5], [1, 3]):  # rows of those still running
        k = torch.tensor(keep)
        if len(keep) < len(h_tilde):
            h_tilde, c, ctx, ctx_mask, prev = take_rows(k, h_tilde, c, ctx, ctx_mask, prev)
        views = torch.randn(len(keep), 36, D + 128, generator=generator)
        cands = torch.randn(len(keep), K, D + 128, generator=generator)
        h, c, h_tilde, logits = f.decoder(prev, views, cands, h_tilde, c, ctx, ctx_mask, layers=layers)
        loss = loss + (logits * torch.randn(logits.shape, generator=generator)).sum() + f.critic(h).sum()
        prev = cands[:, 0, -128:]
    loss.backward()
    return loss.detach(), [p.grad for p in f.parameters()]


@pytest.mark.parametrize("flush_rows", [256, 5])
def test_step_grads_equal_the_layers_own_gradients(flush_rows, monkeypatch):
    """StepGrads defers each decoder weight's gradient to a few products per rollout (every ``flush_rows`` rows,
    and what is left at the end), and the word contexts' to one: the same loss and gradients."""
    from agents.step_grads import PlainLayers, StepGrads, _Pairs

    monkeypatch.setattr(_Pairs, "FLUSH_ROWS", flush_rows)
    loss_plain, plain = rollout_gradients(lambda: PlainLayers)
    loss_deferred, deferred = rollout_gradients(StepGrads)
    assert torch.allclose(loss_plain, loss_deferred, rtol=1e-6)
    names = [name for name, _ in make().named_parameters()]
    assert any(name.startswith("decoder.lstm.weight_ih") for name in names)
    for name, a, b in zip(names, plain, deferred):
        assert a is not None and b is not None, name
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), f"{name} differs by {float((a - b).abs().max())}"
