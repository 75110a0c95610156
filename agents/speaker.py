"""The EnvDrop speaker: writes an instruction for a path (Tan et al. 2019, ``r2r_src/model.py``).

Inputs per path step t (the teacher's walk, STOP included): the 36 view features at the step's viewpoint
(B, T, 36, D+128) and the feature of the candidate taken (B, T, D+128; zeros at STOP).

- encoder: BiLSTM over the taken actions' features -> each step's state queries its 36 views (soft attention
  with h~ output) -> a second BiLSTM, both over the real steps only (masked_bilstm; EnvDrop runs them over the zero padding too).
- decoder: word embedding (256) -> LSTM(512) from zero state -> attention over the encoder's steps (h~) ->
  Linear to the vocabulary. Trained with teacher forcing: logits at word i predict word i+1.

Decoding is greedy or sampled, with <UNK> banned, up to ``max_len`` words (120 for back-translation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from agents.envdrop import FastDropout, drop_image_features
from agents.follower import SoftDotAttention
from agents.masked_lstm import end_to_end_lstm, masked_bilstm
from agents.optim import Adam


@dataclass
class SpeakerConfig:
    """Sizes and regularisation of the speaker (defaults: EnvDrop / CLIP-ViL's speaker run script)."""

    vocab_size: int
    feature_dim: int  # D image dims; inputs are D + angle_dim wide
    angle_dim: int = 128
    word_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.6
    feature_dropout: float = 0.3
    pad_id: int = 0

    def __post_init__(self) -> None:
        assert self.vocab_size > 0 and self.feature_dim > 0, "vocab_size and feature_dim must be positive"
        assert self.hidden_dim % 2 == 0, f"hidden_dim {self.hidden_dim} must be even (bidirectional encoder)"


VIEW_BLOCK_BYTES = 16 * 2**20  # the speaker's views are dropped and attended over in blocks of this size


class SpeakerEncoder(nn.Module):
    def __init__(self, cfg: SpeakerConfig) -> None:
        super().__init__()
        full = cfg.feature_dim + cfg.angle_dim
        self.image_dim, self.feature_dropout = cfg.feature_dim, cfg.feature_dropout
        self.lstm = nn.LSTM(full, cfg.hidden_dim // 2, batch_first=True, bidirectional=True)
        self.drop = FastDropout(cfg.dropout)
        self.attention_layer = SoftDotAttention(cfg.hidden_dim, full)
        self.post_lstm = nn.LSTM(cfg.hidden_dim, cfg.hidden_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, act_feats: torch.Tensor, img_feats: torch.Tensor, lengths: torch.Tensor,
                drop_features: bool = True) -> torch.Tensor:
        """act_feats (B, T, F), img_feats (B, T, 36, F), lengths (B,) -> ctx (B, T, H)."""
        B, T, V, Fd = img_feats.shape
        assert act_feats.shape == (B, T, Fd), f"act_feats {tuple(act_feats.shape)} vs img_feats {(B, T, V, Fd)}"
        drop = drop_features and self.training
        if drop:
            act_feats = drop_image_features(act_feats, self.feature_dropout, self.image_dim, True)
        ctx = self.drop(masked_bilstm(self.lstm, act_feats, lengths)[0]).reshape(B * T, -1)  # (B*T, H)
        views = img_feats.reshape(B * T, V, Fd)
        # the views 16 MB at a time: glibc maps every block over its mmap threshold (32 MB at most) afresh, page
        # by page, at each allocation, and a dropped copy of all of them is ~50 MB at batch 64; smaller blocks
        # are reused (measured: half the page faults, a speaker iteration 300 -> 279 ms)
        rows = max(1, VIEW_BLOCK_BYTES // (V * Fd * views.element_size()))
        x = torch.cat([self.attention_layer(q, drop_image_features(part, self.feature_dropout, self.image_dim, drop))[0]
                       for q, part in zip(ctx.split(rows), views.split(rows))])  # (B*T, H)
        x = self.drop(x.view(B, T, -1))
        return self.drop(masked_bilstm(self.post_lstm, x, lengths)[0])


class SpeakerDecoder(nn.Module):
    def __init__(self, cfg: SpeakerConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=cfg.pad_id)
        self.lstm = nn.LSTM(cfg.word_dim, cfg.hidden_dim, batch_first=True)
        self.drop = FastDropout(cfg.dropout)
        self.attention_layer = SoftDotAttention(cfg.hidden_dim, cfg.hidden_dim)
        self.projection = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, words: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """words (B, L) -> logits (B, L, V) and the LSTM state; all L positions attend in one batched call."""
        x, state = self.lstm(self.drop(self.embedding(words)), state)  # (B, L, H)
        x, _ = self.attention_layer(self.drop(x), ctx, ctx_mask)  # (B, L, H)
        return self.projection(self.drop(x)), state

    def target_logits(self, words: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
                      real: torch.Tensor) -> torch.Tensor:
        """Teacher forcing, ``forward`` on the positions ``real`` (B, L) only, a prefix of each row: logits
        (N, V) of those N positions, row by row. Padding costs next to nothing: the LSTM runs over the rows laid
        end to end (:func:`~agents.masked_lstm.end_to_end_lstm`), and attention and projection see only the real
        positions."""
        where = real.flatten().nonzero().squeeze(1)  # the real positions of the (B * L) grid, row by row
        x = self.drop(self.embedding(words.flatten().index_select(0, where)))  # (N, W)
        h = end_to_end_lstm(self.lstm, x, real.sum(1))  # (N, H)
        x, _ = self.attention_layer.at_positions(self.drop(h), where, words.shape[1], ctx, ctx_mask)
        return self.projection(self.drop(x))

    def step(self, word: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
             state: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoding step, ``forward`` on a single word: word (B,) -> logits (B, V) and the state (h, c),
        each (B, H). The same weights through ``torch.lstm_cell``: a one-step ``nn.LSTM`` call on a CPU pays
        for re-laying out its weights every call (about 3x the step's arithmetic at batch 64)."""
        x = self.drop(self.embedding(word))  # (B, W)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.lstm.hidden_size)
            state = (zeros, zeros)
        lstm = self.lstm
        h, c = torch.lstm_cell(x, state, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        x, _ = self.attention_layer(self.drop(h), ctx, ctx_mask)  # (B, H)
        return self.projection(self.drop(x)), (h, c)

    def folded_step(self, ctx: torch.Tensor, table: bool
                    ) -> tuple[Callable[..., tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """``step`` for eval mode (no dropout) with the weights folded into per-call products. Returns the
        step and the context it reads in place of ``ctx`` (rows of it, as ``ctx``'s, follow the rows decoded).

        - Attention: the scores ``ctx . W_in h`` are ``(ctx W_in) . h``, and the weighted context's share of
          ``W_out [weighted; h]`` is ``attention x (ctx W_out_ctx)``: both context products are made here, once
          (the (B, T, 2H) context returned), and a step multiplies only over the path's few steps.
        - ``h`` meets ``W_hh`` (the next step's gates) and ``W_out``'s ``h`` columns in one product.
        - With ``table`` (a vocabulary small against the batch), every word's gate input ``embedding x W_ih +
          b_ih + b_hh`` is one (V, 4H) table made here, and a step adds its words' rows.

        The state is (``h W_hh``, c), each (B, 4H) and (B, H); the logits are ``step``'s up to rounding.
        """
        assert not self.training, "folded_step skips dropout: it is for eval mode"
        lstm, attention, H = self.lstm, self.attention_layer, self.lstm.hidden_size
        w_out = attention.linear_out.weight  # (H, C + H): the weighted context's columns, then h's
        C = w_out.shape[1] - H
        context = torch.cat([ctx @ attention.linear_in.weight, ctx @ w_out[:, :C].t()], -1)  # (B, T, 2H)
        w_h = torch.cat([w_out[:, C:], lstm.weight_hh_l0]).t()  # (H, H + 4H)
        bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
        inputs = F.linear(self.embedding.weight, lstm.weight_ih_l0, bias) if table else None  # (V, 4H)

        def step(word, context, ctx_mask, state=None):
            gates = inputs[word] if table else F.linear(self.embedding(word), lstm.weight_ih_l0, bias)  # (B, 4H)
            if state is None:
                c = gates.new_zeros(word.shape[0], H)
            else:
                gates, c = gates + state[0], state[1]
            i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's gate order
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
            hw = h @ w_h  # (B, H + 4H): W_out's h share, the next step's h W_hh
            keys, values = context[..., :H], context[..., H:]  # (B, T, H) each
            scores = torch.bmm(keys, h.unsqueeze(2)).squeeze(2).masked_fill(ctx_mask, float("-inf"))  # (B, T)
            weighted = torch.bmm(torch.softmax(scores, -1).unsqueeze(1), values).squeeze(1)  # (B, H)
            return self.projection(torch.tanh(weighted + hw[:, :H])), (hw[:, H:], c)

        return step, context


class Speaker(nn.Module):
    """Speaker model; ``encoder`` and ``decoder`` each get an Adam optimiser, as in EnvDrop."""

    def __init__(self, cfg: SpeakerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SpeakerEncoder(cfg)
        self.decoder = SpeakerDecoder(cfg)

    def encode(self, act_feats: torch.Tensor, img_feats: torch.Tensor, lengths: torch.Tensor,
               drop_features: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Path features -> ctx (B, T, H) and ctx_mask (B, T), True past each path's end."""
        lengths = lengths.to(act_feats.device)
        ctx = self.encoder(act_feats, img_feats, lengths, drop_features)
        mask = torch.arange(ctx.shape[1], device=ctx.device)[None, :] >= lengths[:, None]
        return ctx, mask

    def loss(self, instr: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
             total_words: float | None = None) -> torch.Tensor:
        """Teacher-forced cross-entropy, mean over real (non-pad) target words (or summed and divided by
        ``total_words``, under torchrun the share of the whole batch's words); instr (B, L) <BOS> ... <EOS>."""
        targets = instr[:, 1:]
        longest = int((targets != self.cfg.pad_id).sum(1).max())
        targets = targets[:, :longest]
        real = targets != self.cfg.pad_id  # (B, L): a prefix of each row, words ... <EOS>, then pad
        logits = self.decoder.target_logits(instr[:, :longest], ctx, ctx_mask, real)  # (N, V)
        if total_words is None:
            return F.cross_entropy(logits, targets[real])
        return F.cross_entropy(logits, targets[real], reduction="sum") / max(total_words, 1.0)

    @torch.no_grad()
    def decode(self, ctx: torch.Tensor, ctx_mask: torch.Tensor, bos_id: int, eos_id: int,
               banned: tuple[int, ...] = (), max_len: int = 120, sample: bool = False,
               compact: bool | None = None) -> torch.Tensor:
        """Write instructions word by word: (B, <= max_len) ids without <BOS>, <EOS> kept, pad after it.

        With ``compact`` (the default on a CPU) a row leaves the batch the model computes on once it has written
        <EOS>, so a step costs in proportion to the instructions still being written; that needs the words on
        the host at every step. Without it (the default on a GPU, where the rows cost nothing extra) every row
        keeps going, its words after <EOS> are discarded, and the host looks only every 8 words whether all
        have finished. Greedy decoding writes the same words either way. In eval mode the steps are
        :meth:`SpeakerDecoder.folded_step`'s: the attention's context products are made once per call, and, when
        the vocabulary is small against the batch (R2R's 991 words at batch 64), the word embedding's share of the
        LSTM gates is one table row per word; the same numbers up to rounding.
        """
        B, pad = ctx.shape[0], self.cfg.pad_id
        compact = ctx.device.type == "cpu" if compact is None else compact
        out = torch.full((B, max_len), pad, dtype=torch.long, device=ctx.device)
        alive = torch.arange(B, device=ctx.device)  # rows still writing; ctx, ctx_mask, word, state hold these
        word = torch.full((B,), bos_id, dtype=torch.long, device=ctx.device)
        finished = torch.zeros(B, dtype=torch.bool, device=ctx.device)  # without compact: rows past <EOS>
        written = torch.zeros((), dtype=torch.long, device=ctx.device)  # without compact: steps any row wrote
        state, steps = None, 0
        if self.training:
            step = self.decoder.step
        else:  # the table costs as much as ~vocabulary-size decoded rows: worth it when rows write ~24 words on average
            step, ctx = self.decoder.folded_step(ctx, table=self.cfg.vocab_size <= 24 * B)
        banned_ids = torch.tensor(banned, dtype=torch.long, device=ctx.device)  # on the device once, not per word
        for t in range(max_len):
            logits, state = step(word, ctx, ctx_mask, state)  # (A, V)
            if banned:
                logits.index_fill_(1, banned_ids, float("-inf"))
            word = (torch.multinomial(torch.softmax(logits, -1), 1).squeeze(1) if sample
                    else logits.argmax(-1))
            steps = t + 1
            if not compact:
                out[:, t] = word.masked_fill(finished, pad)
                written += (~finished).any()
                finished |= word == eos_id
                if steps % 8 == 0 and bool(finished.all()):
                    break
                continue
            out[alive, t] = word
            going = word != eos_id
            if not bool(going.all()):
                if not bool(going.any()):
                    break
                keep = going.nonzero().squeeze(1)
                alive, word, ctx, ctx_mask = alive[keep], word[keep], ctx[keep], ctx_mask[keep]
                state = (state[0][keep], state[1][keep])
        return out[:, :steps] if compact else out[:, :int(written)]


def make_speaker_optimizers(speaker: Speaker, lr: float = 1e-4) -> dict[str, Adam]:
    """EnvDrop's speaker optimisers: Adam on the encoder and on the decoder (:mod:`agents.optim`'s)."""
    return {name: Adam(getattr(speaker, name).parameters(), lr=lr) for name in ("encoder", "decoder")}


def as_follower_instructions(words: torch.Tensor, bos_id: int, eos_id: int, pad_id: int = 0) -> torch.Tensor:
    """Speaker output (B, T) -> follower input (B, T+1): prepend <BOS>; close an unfinished one with <EOS>."""
    bos = torch.full((words.shape[0], 1), bos_id, dtype=words.dtype, device=words.device)
    out = torch.cat([bos, words], dim=1)
    unfinished = out[:, -1] != pad_id  # as EnvDrop: the last token is overwritten by <EOS> unless it is pad
    out[unfinished, -1] = eos_id
    return out
