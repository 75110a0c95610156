"""The speaker (shapes, decoding rules, overfitting a handful of instructions) and BLEU against hand values."""

from __future__ import annotations

import math

import pytest
import torch

from agents.bleu import corpus_bleu
from agents.optim import Adam
from agents.speaker import Speaker, SpeakerConfig, as_follower_instructions, make_speaker_optimizers

PAD, UNK, EOS, BOS = 0, 1, 2, 3
D = 16


def make(**kw) -> Speaker:
    torch.manual_seed(0)
    return Speaker(SpeakerConfig(vocab_size=12, feature_dim=D, **kw))


def paths(n: int = 4, steps: int = 3):
    torch.manual_seed(1)
    img = torch.randn(n, steps, 36, D + 128)
    act = torch.randn(n, steps, D + 128)
    lengths = torch.tensor([steps, 2, steps, 1][:n])
    return act, img, lengths


def test_shapes_and_mask():
    s = make()
    act, img, lengths = paths()
    ctx, mask = s.encode(act, img, lengths)
    assert ctx.shape == (4, 3, 512)
    assert mask.tolist()[1] == [False, False, True] and mask.tolist()[3] == [False, True, True]
    logits, _ = s.decoder(torch.full((4, 5), 4), ctx, mask)
    assert logits.shape == (4, 5, 12)


def test_encoder_ignores_steps_past_the_path_end():
    s = make().eval()
    act, img, lengths = paths()
    ctx, _ = s.encode(act, img, lengths)
    act2, img2 = act.clone(), img.clone()
    act2[3, 1:] = 99.0  # garbage after path 3's single step
    img2[3, 1:] = -5.0
    ctx2, _ = s.encode(act2, img2, lengths)
    assert torch.allclose(ctx[3, :1], ctx2[3, :1], atol=1e-6)


@pytest.mark.slow
def test_speaker_overfits_a_handful_of_instructions():
    s = make(hidden_dim=64, word_dim=32, dropout=0.0, feature_dropout=0.0)
    act, img, lengths = paths()
    instr = torch.tensor([[BOS, 4, 5, 6, EOS, PAD], [BOS, 7, 8, EOS, PAD, PAD],
                          [BOS, 9, 10, 11, 4, EOS], [BOS, 5, EOS, PAD, PAD, PAD]])
    opts = make_speaker_optimizers(s, lr=1e-2)
    assert all(isinstance(o, Adam) for o in opts.values())
    for _ in range(60):  # about 20 steps suffice
        loss = s.loss(instr, *s.encode(act, img, lengths))
        if loss.item() < 0.05:
            break
        for o in opts.values():
            o.zero_grad()
        loss.backward()
        for o in opts.values():
            o.step()
    assert loss.item() < 0.05
    s.eval()
    words = s.decode(*s.encode(act, img, lengths), BOS, EOS, banned=(UNK,), max_len=10)
    expected = torch.cat([instr[:, 1:], torch.zeros(4, words.shape[1] - 5, dtype=torch.long)], 1)
    assert torch.equal(words, expected)  # greedy decoding reproduces them, pad after <EOS>


def test_decode_bans_unk_and_stops_at_max_len():
    s = make().eval()
    act, img, lengths = paths()
    with torch.no_grad():
        s.decoder.projection.bias.fill_(-100.0)
        s.decoder.projection.bias[UNK] = 100.0  # <UNK> would always win
        s.decoder.projection.bias[6] = 50.0
    ctx, mask = s.encode(act, img, lengths)
    words = s.decode(ctx, mask, BOS, EOS, banned=(UNK,), max_len=7)
    assert words.shape == (4, 7) and (words == 6).all()
    torch.manual_seed(0)
    sampled = s.decode(ctx, mask, BOS, EOS, banned=(UNK,), max_len=7, sample=True)
    assert (sampled != UNK).all()


def _reference_decode(s: Speaker, ctx, mask, max_len: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy decoding the plain way: every row steps until all have written <EOS>, through ``step``."""
    word, ended = torch.full((ctx.shape[0],), BOS), torch.zeros(ctx.shape[0], dtype=torch.bool)
    state, words, logits = None, [], []
    for _ in range(max_len):
        step_logits, state = s.decoder.step(word, ctx, mask, state)
        step_logits[:, UNK] = float("-inf")
        logits.append(step_logits)
        word = step_logits.argmax(-1)
        words.append(word.masked_fill(ended, PAD))
        ended = ended | (word == EOS)
        if bool(ended.all()):
            break
    return torch.stack(words, 1), logits


@pytest.mark.parametrize("vocab", [30, 700])  # 700 > 24 x 24 rows: no table, ``step`` with rows dropped
def test_decode_drops_finished_rows_and_looks_up_the_input_gates(vocab):
    """Greedy decoding with finished rows dropped (and the table of input gates, for a small vocabulary) writes
    what the plain loop writes, and the folded step's logits equal ``step``'s."""
    torch.manual_seed(0)
    s = Speaker(SpeakerConfig(vocab_size=vocab, feature_dim=D)).eval()
    torch.manual_seed(3)
    n = 24
    act, img = torch.randn(n, 3, D + 128), torch.randn(n, 3, 36, D + 128)
    lengths = torch.randint(1, 4, (n,))
    with torch.no_grad():
        s.decoder.projection.weight.mul_(10.0)  # sharper words than a fresh model's: rows end at various steps
        s.decoder.embedding.weight.mul_(3.0)
        ctx, mask = s.encode(act, img, lengths)
        expected, logits = _reference_decode(s, ctx, mask, max_len=25)
        got = s.decode(ctx, mask, BOS, EOS, banned=(UNK,), max_len=25)
        ends = [(row == EOS).nonzero()[0, 0].item() if (row == EOS).any() else None for row in expected]
        assert len({e for e in ends if e is not None}) >= 3 and None in ends, ends  # some never finish
        assert torch.equal(got, expected)
        # a GPU's way (no rows dropped, the host looks every 8 words) writes the same, trimmed the same; also
        # when every row finishes (between two looks)
        assert torch.equal(s.decode(ctx, mask, BOS, EOS, banned=(UNK,), max_len=25, compact=False), expected)
        done = torch.tensor([e is not None for e in ends])
        expected_done, _ = _reference_decode(s, ctx[done], mask[done], max_len=25)
        assert expected_done.shape[1] % 8 and (expected_done[:, -1] == EOS).any()
        for compact in (True, False):
            got = s.decode(ctx[done], mask[done], BOS, EOS, banned=(UNK,), max_len=25, compact=compact)
            assert torch.equal(got, expected_done)
        for table in (True, False):  # the folded step's logits are step's, word after word
            step, context = s.decoder.folded_step(ctx, table)
            word, state = torch.full((n,), BOS), None
            for t in range(6):
                got, state = step(word, context, mask, state)
                got[:, UNK] = float("-inf")
                assert torch.allclose(got, logits[t], atol=1e-5), (table, t)
                word = logits[t].argmax(-1)


def test_loss_on_real_positions_equals_the_padded_pass():
    import torch.nn.functional as F

    s = make(dropout=0.0, feature_dropout=0.0)
    torch.manual_seed(2)
    n, steps = 16, 3
    act, img = torch.randn(n, steps, D + 128), torch.randn(n, steps, 36, D + 128)
    lengths = torch.randint(1, steps + 1, (n,))
    words = [1, 2, 9, 3, 1, 1, 2, 19, 1, 4, 1, 2, 1, 1, 3, 2]  # words per instruction: mostly short
    instr = torch.zeros(n, 24, dtype=torch.long)
    for i, k in enumerate(words):
        instr[i, :k + 2] = torch.tensor([BOS] + torch.randint(4, 12, (k,)).tolist() + [EOS])

    def loss_and_grads(loss_of):
        s.zero_grad()
        loss = loss_of()
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in s.parameters() if p.grad is not None]

    def padded():  # every position through the decoder, pad targets ignored
        logits, _ = s.decoder(instr[:, :-1], *s.encode(act, img, lengths))
        return F.cross_entropy(logits.transpose(1, 2), instr[:, 1:], ignore_index=PAD)

    expected = loss_and_grads(padded)
    got = loss_and_grads(lambda: s.loss(instr, *s.encode(act, img, lengths)))
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    summed = s.loss(instr, *s.encode(act, img, lengths), total_words=100.0) * 100.0
    assert torch.allclose(summed, expected[0] * sum(k + 1 for k in words), atol=1e-3)


def test_decoding_step_equals_the_teacher_forced_pass():
    s = make().eval()
    act, img, lengths = paths()
    ctx, mask = s.encode(act, img, lengths)
    words = torch.randint(4, 12, (4, 6))
    with torch.no_grad():
        full, (h_n, c_n) = s.decoder(words, ctx, mask)  # (4, 6, V) in one nn.LSTM call
        state, steps = None, []
        for t in range(words.shape[1]):
            logits, state = s.decoder.step(words[:, t], ctx, mask, state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    assert torch.allclose(state[0], h_n[0], atol=1e-6) and torch.allclose(state[1], c_n[0], atol=1e-6)


def test_as_follower_instructions():
    words = torch.tensor([[5, 6, EOS, PAD], [7, 8, 9, 10]])
    out = as_follower_instructions(words, BOS, EOS, PAD)
    assert out.tolist() == [[BOS, 5, 6, EOS, PAD], [BOS, 7, 8, 9, EOS]]  # unfinished: closed with <EOS>


# BLEU ------------------------------------------------------------------------------------------------------
def test_bleu_perfect_match():
    ref = "walk past the sofa and stop".split()
    score = corpus_bleu([[ref]], [ref])
    assert score.bleu == pytest.approx(1.0) and score.precisions == (1.0, 1.0, 1.0, 1.0)


def test_bleu_hand_computed_multi_reference():
    hyp = "the cat sat on the mat".split()
    refs = ["the cat is on the mat".split(), "there is a cat on the mat today".split()]
    s = corpus_bleu([refs], [hyp])
    # 1-grams: the x2 (clipped 2), cat, on, mat match; sat does not -> 5/6.
    # 2-grams: the cat, on the, the mat -> 3/5. 3-grams: on the mat -> 1/4. 4-grams: none -> 0/3.
    assert s.precisions == pytest.approx((5 / 6, 3 / 5, 1 / 4, 0.0))
    assert s.bleu == 0.0  # no smoothing: any zero precision zeroes BLEU
    assert s.reference_length == 6 and s.brevity_penalty == 1.0  # shortest reference, as NMT's compute_bleu
    smooth = corpus_bleu([refs], [hyp], smooth=True)
    expected = math.exp((math.log(6 / 7) + math.log(4 / 6) + math.log(2 / 5) + math.log(1 / 4)) / 4)
    assert smooth.bleu == pytest.approx(expected)


def test_bleu_corpus_pooling_and_brevity_penalty():
    # Pooled counts over two examples; the hypothesis corpus (5 words) is shorter than the references (8).
    hyps = ["a b c".split(), "d e".split()]
    refs = [["a b c d".split()], ["d e f g".split(), "d e f g h".split()]]
    s = corpus_bleu(refs, hyps, max_order=2)
    assert s.precisions == pytest.approx((1.0, 1.0))  # 5/5 unigrams, 3/3 bigrams
    assert s.reference_length == 8 and s.hypothesis_length == 5
    assert s.bleu == pytest.approx(math.exp(1 - 8 / 5))


def test_bleu_clips_repeated_words():
    s = corpus_bleu([["the cat".split()]], ["the the the".split()], max_order=1)
    assert s.precisions == pytest.approx((1 / 3,))
    with pytest.raises(ValueError, match="reference"):
        corpus_bleu([[]], [["x"]])
