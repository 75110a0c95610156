"""A transformer captioner over CLIP grid features (the captioner of Luo 2020, "A Better Variant of
Self-Critical Sequence Training", used by the CLIP-ViL paper's Table 2), with sampling and beam search.

Encoder: the grid cells ``[B, N, C]`` pass a LayerNorm (grid features differ in scale between CLIP variants),
a Linear to ``d`` and ``layers`` transformer encoder layers. Decoder: word embeddings plus learned positions,
``layers`` causal transformer decoder layers attending to the encoded cells, a Linear to the vocabulary.
Luo's defaults: 6 + 6 layers, d 512, 8 heads, dropout 0.1 (tests use smaller ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class CaptionerConfig:
    """Architecture of the captioner."""

    vocab_size: int = 100
    feature_dim: int = 2048
    d: int = 512
    layers: int = 6
    heads: int = 8
    dropout: float = 0.1
    max_len: int = 18  # tokens including <BOS> and <EOS>
    pad_id: int = 0
    bos_id: int = 3
    eos_id: int = 2
    unk_id: int = 1


class Captioner(nn.Module):
    """Grid features -> caption word logits (see the module docstring)."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.feature_dim)
        self.proj = nn.Linear(cfg.feature_dim, cfg.d)
        layer = lambda cls: cls(cfg.d, cfg.heads, 4 * cfg.d, cfg.dropout, batch_first=True)  # noqa: E731
        self.encoder = nn.TransformerEncoder(layer(nn.TransformerEncoderLayer), cfg.layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(layer(nn.TransformerDecoderLayer), cfg.layers)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d, padding_idx=cfg.pad_id)
        self.position = nn.Embedding(cfg.max_len, cfg.d)
        self.out = nn.Linear(cfg.d, cfg.vocab_size)

    def encode(self, grid: torch.Tensor) -> torch.Tensor:
        """``[B, N, C]`` grid features -> ``[B, N, d]`` memory."""
        return self.encoder(self.proj(self.norm(grid.float())))

    def decode(self, memory: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Next-word logits ``[B, T, V]`` for every prefix of ``words [B, T]`` (teacher forcing)."""
        steps = words.shape[1]
        x = self.embed(words) + self.position(torch.arange(steps, device=words.device))[None]  # [B, T, d]
        causal = torch.ones(steps, steps, dtype=torch.bool, device=words.device).triu(1)  # True: may not attend
        h = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, tgt_key_padding_mask=words == self.cfg.pad_id)
        return self.out(h)

    def forward(self, grid: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]``: position t predicts the word after ``words[:, :t + 1]`` (pass
        ``<BOS> w1 .. wn``; the targets are ``w1 .. wn <EOS>``)."""
        return self.decode(self.encode(grid), words)

    def _step(self, memory: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[B, V]`` of the next word after ``prefix [B, t]``; ``<PAD>``, ``<BOS>`` and
        ``<UNK>`` are never produced."""
        logits = self.decode(memory, prefix)[:, -1]  # [B, V]
        banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        banned[[self.cfg.pad_id, self.cfg.bos_id, self.cfg.unk_id]] = True
        return torch.log_softmax(logits.masked_fill(banned, -float("inf")), dim=-1)

    def sample(self, grid: torch.Tensor, n: int = 1, greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` captions per image: words ``[B * n, T]`` (after ``<BOS>``, ``<PAD>`` after ``<EOS>``) and
        the summed log-probability of each ``[B * n]`` (with gradient, for self-critical training)."""
        memory = self.encode(grid).repeat_interleave(n, dim=0)  # [B*n, N, d]
        rows = memory.shape[0]
        prefix = torch.full((rows, 1), self.cfg.bos_id, dtype=torch.long, device=grid.device)
        done = torch.zeros(rows, dtype=torch.bool, device=grid.device)
        total = torch.zeros(rows, device=grid.device)
        for _ in range(self.cfg.max_len - 1):
            logp = self._step(memory, prefix)  # [B*n, V]
            word = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1).squeeze(1)
            word = torch.where(done, torch.full_like(word, self.cfg.pad_id), word)
            total = total + torch.where(done, torch.zeros_like(total), logp.gather(1, word[:, None]).squeeze(1))
            prefix = torch.cat([prefix, word[:, None]], dim=1)
            done = done | (word == self.cfg.eos_id)
            if done.all():
                break
        return prefix[:, 1:], total

    @torch.no_grad()
    def beam_search(self, grid: torch.Tensor, beam: int = 5) -> torch.Tensor:
        """The most probable caption of each image under beam search: ``[B, T]`` words (``<PAD>``-padded)."""
        memory = self.encode(grid)  # [B, N, d]
        batch, vocab = grid.shape[0], self.cfg.vocab_size
        memory = memory.repeat_interleave(beam, dim=0)  # [B*k, N, d]
        prefix = torch.full((batch * beam, 1), self.cfg.bos_id, dtype=torch.long, device=grid.device)
        score = torch.full((batch, beam), -float("inf"), device=grid.device)
        score[:, 0] = 0.0  # the beams start identical: keep one
        done = torch.zeros(batch * beam, dtype=torch.bool, device=grid.device)
        for _ in range(self.cfg.max_len - 1):
            logp = self._step(memory, prefix)  # [B*k, V]
            # a finished beam stays as it is: it may only add <PAD> at no cost
            logp[done] = -float("inf")
            logp[done, self.cfg.pad_id] = 0.0
            total = (score.reshape(-1, 1) + logp).reshape(batch, beam * vocab)  # [B, k*V]
            score, flat = total.topk(beam, dim=1)  # [B, k]
            origin = flat // vocab + torch.arange(batch, device=grid.device)[:, None] * beam  # [B, k] rows
            word = (flat % vocab).reshape(-1)
            prefix = torch.cat([prefix[origin.reshape(-1)], word[:, None]], dim=1)
            done = done[origin.reshape(-1)] | (word == self.cfg.eos_id)
            if done.all():
                break
        best = score.argmax(1) + torch.arange(batch, device=grid.device) * beam  # [B]
        return prefix[best, 1:]
