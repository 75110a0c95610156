"""VQA heads over CLIP grid features: a Pythia-style top-down attention head and an MCAN-style co-attention
transformer (the two heads of the CLIP-ViL paper's Table 1), and the question-only baseline.

Both read grid features ``[B, N, C]`` (N = h * w cells) and a question ``[B, L]`` of word ids, and return
answer logits ``[B, A]`` trained with binary cross-entropy on soft scores. Deviations from the references,
each for one reason:

* Word embeddings start random (GloVe would need a download); the features pass a LayerNorm first, because
  grid features differ in scale by orders of magnitude between CLIP variants (and at random init).
* Pythia (Jiang et al. 2018, v0.1) uses weight-normalised layers, 2 attention glimpses and a 5000-d joint
  space; here plain Linear layers and ``joint_dim`` (default 1024).
* MCAN (Yu et al. 2019): the encoder-decoder with L = 6 layers, d = 512, 8 heads, attentional reduction
  (AttFlat) of both streams, summed and LayerNormed; as in the paper, but configurable (tests use 2 layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from features.encoders import Encoder
from features.grid import grid_tokens


@dataclass
class VQAHeadConfig:
    """Architecture of a VQA head."""

    head: str = "mcan"  # "pythia", "mcan" or "question-only" (the baseline)
    vocab_size: int = 100
    num_answers: int = 3129
    feature_dim: int = 2048  # C of the grid features (2048 RN50/RN101, 2560 RN50x4, 768 ViT-B)
    word_dim: int = 300
    hidden: int = 512  # question LSTM size; MCAN's model size d
    joint_dim: int = 1024  # Pythia's joint space; MCAN's fused size
    layers: int = 6  # MCAN encoder and decoder depth
    heads: int = 8
    dropout: float = 0.1
    pad_id: int = 0


class QuestionEncoder(nn.Module):
    """Word embeddings and a one-layer LSTM: per-token states ``[B, L, H]`` and the last real state ``[B, H]``."""

    def __init__(self, cfg: VQAHeadConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=cfg.pad_id)
        self.lstm = nn.LSTM(cfg.word_dim, cfg.hidden, batch_first=True)
        self.pad_id = cfg.pad_id

    def forward(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = words != self.pad_id  # [B, L] True on words
        states, _ = self.lstm(self.embed(words))  # [B, L, H]
        last = mask.sum(1).clamp(min=1) - 1  # [B]
        final = states[torch.arange(words.shape[0], device=words.device), last]  # [B, H]
        return states, final, mask


class PythiaHead(nn.Module):
    """Top-down attention (Anderson et al. 2018, as Pythia v0.1): the question attends over the grid cells,
    the attended feature and the question are fused by an element-wise product, an MLP classifies."""

    def __init__(self, cfg: VQAHeadConfig) -> None:
        super().__init__()
        self.question = QuestionEncoder(cfg)
        self.norm = nn.LayerNorm(cfg.feature_dim)
        self.att_v = nn.Linear(cfg.feature_dim, cfg.joint_dim)
        self.att_q = nn.Linear(cfg.hidden, cfg.joint_dim)
        self.att = nn.Linear(cfg.joint_dim, 1)
        self.fuse_v = nn.Linear(cfg.feature_dim, cfg.joint_dim)
        self.fuse_q = nn.Linear(cfg.hidden, cfg.joint_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Sequential(nn.Linear(cfg.joint_dim, 2 * cfg.joint_dim), nn.ReLU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(2 * cfg.joint_dim, cfg.num_answers))

    def forward(self, grid: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        v = self.norm(grid.float())  # [B, N, C]
        _, q, _ = self.question(words)  # [B, H]
        joint = F.relu(self.att_v(v)) * F.relu(self.att_q(q))[:, None]  # [B, N, J]
        weights = torch.softmax(self.att(self.drop(joint)), dim=1)  # [B, N, 1]
        attended = (weights * v).sum(1)  # [B, C]
        fused = F.relu(self.fuse_v(attended)) * F.relu(self.fuse_q(q))  # [B, J]
        return self.classifier(self.drop(fused))  # [B, A]


class _FFN(nn.Module):
    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _SA(nn.Module):
    """MCAN's self-attention unit (post-norm residual), with an optional guided-attention unit after it."""

    def __init__(self, d: int, heads: int, dropout: float, guided: bool) -> None:
        super().__init__()
        self.self_att = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.guided = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True) if guided else None
        self.ffn = _FFN(d, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3 if guided else 2))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, y: torch.Tensor | None = None,
                y_pad: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norms[0](x + self.drop(self.self_att(x, x, x, key_padding_mask=pad, need_weights=False)[0]))
        if self.guided is not None:
            x = self.norms[1](x + self.drop(self.guided(x, y, y, key_padding_mask=y_pad, need_weights=False)[0]))
        return self.norms[-1](x + self.drop(self.ffn(x)))


class _AttFlat(nn.Module):
    """MCAN's attentional reduction: an MLP scores each element, the softmax-weighted sum is projected."""

    def __init__(self, d: int, out: int, dropout: float) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, 1))
        self.proj = nn.Linear(d, out)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        scores = self.score(x)  # [B, N, 1]
        if pad is not None:
            scores = scores.masked_fill(pad[..., None], float("-inf"))
        return self.proj((torch.softmax(scores, dim=1) * x).sum(1))  # [B, out]


class MCANHead(nn.Module):
    """MCAN's encoder-decoder: L self-attention layers over the question, then L layers over the grid cells
    with self-attention and attention guided by the encoded question; both reduced, summed, classified."""

    def __init__(self, cfg: VQAHeadConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.question = QuestionEncoder(cfg)
        self.norm = nn.LayerNorm(cfg.feature_dim)
        self.image_proj = nn.Linear(cfg.feature_dim, d)
        self.encoder = nn.ModuleList(_SA(d, cfg.heads, cfg.dropout, guided=False) for _ in range(cfg.layers))
        self.decoder = nn.ModuleList(_SA(d, cfg.heads, cfg.dropout, guided=True) for _ in range(cfg.layers))
        self.flat_q = _AttFlat(d, cfg.joint_dim, cfg.dropout)
        self.flat_v = _AttFlat(d, cfg.joint_dim, cfg.dropout)
        self.out_norm = nn.LayerNorm(cfg.joint_dim)
        self.classifier = nn.Linear(cfg.joint_dim, cfg.num_answers)

    def forward(self, grid: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        q, _, mask = self.question(words)  # [B, L, d]
        q_pad = ~mask
        v = self.image_proj(self.norm(grid.float()))  # [B, N, d]
        for layer in self.encoder:
            q = layer(q, q_pad)
        for layer in self.decoder:
            v = layer(v, None, q, q_pad)
        fused = self.out_norm(self.flat_q(q, q_pad) + self.flat_v(v, None))  # [B, J]
        return self.classifier(fused)  # [B, A]


class QuestionOnlyHead(nn.Module):
    """The question-only baseline ("LSTM Q" of Antol et al. 2015 / Goyal et al. 2017): the question's LSTM state
    through an MLP. It takes the grid argument like the other heads and ignores it.

    (Zeroing a head's image features is no fair baseline: Pythia's element-wise product of image and question
    terms then scales the question's gradient down to the size of a bias, and it barely learns.)"""

    def __init__(self, cfg: VQAHeadConfig) -> None:
        super().__init__()
        self.question = QuestionEncoder(cfg)
        self.classifier = nn.Sequential(nn.Linear(cfg.hidden, cfg.joint_dim), nn.ReLU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(cfg.joint_dim, cfg.num_answers))

    def forward(self, grid: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.question(words)[1])  # [B, A]


HEADS = {"pythia": PythiaHead, "mcan": MCANHead, "question-only": QuestionOnlyHead}


def make_head(cfg: VQAHeadConfig) -> nn.Module:
    """The head named by ``cfg.head``."""
    if cfg.head not in HEADS:
        raise ValueError(f"unknown VQA head {cfg.head!r}; choose one of {', '.join(HEADS)}")
    return HEADS[cfg.head](cfg)


class EndToEnd(nn.Module):
    """A head trained through the CLIP image tower: preprocessed images ``[B, 3, S, S]`` -> grid -> head (a VQA
    head here, the V&L transformer in :mod:`tasks.pretrain`).

    The tower's BatchNorm statistics stay frozen (the tower is kept in eval mode while the rest trains), as
    fine-tuning a detector-style backbone with small batches does; its weights do train.
    """

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.visual = encoder.visual  # registered, so its weights are the model's
        self.head = head

    def train(self, mode: bool = True) -> EndToEnd:
        super().train(mode)
        self.visual.eval()
        return self

    def forward(self, images: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """The head's output on the grid of ``images``; ``inputs`` follow the grid into the head (a VQA head's
        words; a V&L transformer's sampled cells and text)."""
        grid = self.encoder.forward(images.to(self.encoder.dtype))[1]  # [B, C, h, w]
        return self.head(grid_tokens(grid).float(), *inputs)  # [B, A] for a VQA head
