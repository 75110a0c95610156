"""The single-stream V&L transformer of CLIP-ViL_p (Shen et al. 2021, section 5), its pretraining heads and its
fine-tuning classifier.

One BERT encoder (``transformers``' ``BertModel``, random init, offline) reads ``[CLS] word pieces [SEP]`` followed
by visual tokens: each sampled CLIP grid cell's feature (LayerNorm, Linear) plus its 2D position (the cell's box
``(x1, y1, x2, y2)`` in [0, 1], Linear, as LXMERT embeds a region's box), LayerNormed. Text tokens have segment
0 and BERT's 1D positions; visual tokens segment 1 and one shared position slot (``max_text``), so their order
means nothing and their layout comes from the 2D embedding alone. Deviations from the paper, each for one reason:

* A small BERT (``hidden`` 256, 4 layers by default), not BERT-base, random init: the CPU budgets here; the
  paper starts from BERT-base weights, which would need a download.
* The grid is that of CLIP's 224-pixel input (7 x 7 = 49 cells for RN50), not of images resized to a shorter
  side of 384 (about 12 x 20 cells): with the default 100 sampled patches every cell is used; fewer patches
  (``--patches``) sample a random subset per example, as the paper does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ViLConfig:
    """Architecture of the single-stream transformer (saved in every checkpoint)."""

    vocab_size: int = 1000
    feature_dim: int = 2048  # C of the grid features (2048 for RN50)
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    max_text: int = 32  # word pieces, [CLS] and [SEP] included
    dropout: float = 0.1


class ViLTransformer(nn.Module):
    """Text and sampled grid cells in one BERT encoder: ``(states [B, L + N, D], pooled [B, D])``."""

    def __init__(self, cfg: ViLConfig) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.cfg = cfg
        self.bert = BertModel(BertConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden, hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, max_position_embeddings=cfg.max_text + 1, type_vocab_size=2,
            pad_token_id=0))
        self.feature_norm = nn.LayerNorm(cfg.feature_dim)  # grid features differ in scale between CLIP variants
        self.feature_proj = nn.Linear(cfg.feature_dim, cfg.hidden)
        self.box_proj = nn.Linear(4, cfg.hidden)
        self.visual_norm = nn.LayerNorm(cfg.hidden)

    def visual_tokens(self, grid: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, N, D]`` of the cells ``cells [B, N]`` (row-major indices) of a square grid ``[B, M, C]``."""
        b, m, c = grid.shape
        side = math.isqrt(m)
        assert side * side == m, f"a grid of {m} cells is not square; the 2D positions assume h == w"
        features = grid.gather(1, cells[..., None].expand(-1, -1, c)).float()  # [B, N, C]
        row, col = (cells // side).float(), (cells % side).float()  # [B, N]
        box = torch.stack([col, row, col + 1, row + 1], dim=-1) / side  # [B, N, 4]
        return self.visual_norm(self.feature_proj(self.feature_norm(features)) + self.box_proj(box))  # [B, N, D]

    def forward(self, grid: torch.Tensor, cells: torch.Tensor, ids: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``grid [B, M, C]``, ``cells [B, N]`` (N may be 0: a blind model), word pieces ``ids [B, L]`` with
        ``mask [B, L]`` (1 on real tokens) -> ``(states [B, L + N, D], pooled [B, D])``."""
        b, length = ids.shape
        assert length <= self.cfg.max_text, f"{length} word pieces, the model has positions for {self.cfg.max_text}"
        text = self.bert.embeddings.word_embeddings(ids)  # [B, L, D]
        visual = self.visual_tokens(grid, cells)  # [B, N, D]
        n = visual.shape[1]
        device = ids.device
        types = torch.cat([torch.zeros(b, length, dtype=torch.long, device=device),
                           torch.ones(b, n, dtype=torch.long, device=device)], dim=1)  # [B, L + N]
        positions = torch.cat([torch.arange(length, device=device),
                               torch.full((n,), self.cfg.max_text, device=device)])[None].expand(b, -1)
        attention = torch.cat([mask, torch.ones(b, n, dtype=mask.dtype, device=device)], dim=1)  # [B, L + N]
        out = self.bert(inputs_embeds=torch.cat([text, visual], dim=1), attention_mask=attention,
                        token_type_ids=types, position_ids=positions)
        return out.last_hidden_state, out.pooler_output  # [B, L + N, D], [B, D]


def _mlp(hidden: int, out: int) -> nn.Sequential:
    """LXMERT's answer head: Linear, GELU, LayerNorm, Linear."""
    return nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.LayerNorm(2 * hidden), nn.Linear(2 * hidden, out))


class Pretrainer(nn.Module):
    """The transformer with the three pretraining heads: masked word pieces (on the text states), image-text
    match (on the pooled state, 2-way) and question answering (on the pooled state, soft scores over the
    answer space). ``forward`` is the transformer's; the losses read the heads."""

    def __init__(self, cfg: ViLConfig, num_answers: int) -> None:
        super().__init__()
        self.backbone = ViLTransformer(cfg)
        self.mlm = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden),
                                 nn.Linear(cfg.hidden, cfg.vocab_size))
        self.itm = nn.Linear(cfg.hidden, 2)
        self.qa = _mlp(cfg.hidden, num_answers)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(*inputs)


class Classifier(nn.Module):
    """The transformer fine-tuned on a task: the pooled state through an answer head, logits ``[B, K]``."""

    def __init__(self, cfg: ViLConfig, classes: int) -> None:
        super().__init__()
        self.backbone = ViLTransformer(cfg)
        self.head = _mlp(cfg.hidden, classes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(*inputs)[1])  # [B, K]
