"""The EnvDrop follower (Tan et al. 2019): an instruction encoder, an attentive action decoder and a critic.

Architecture, as EnvDrop's ``r2r_src/model.py`` builds it (module names kept the same, so its checkpoints'
state dicts map onto these modules):

- encoder: word embedding (256) -> bidirectional LSTM (256 per direction, 512 in all). Decoder initial state
  h0 = tanh(Linear(max-pool over the words)), c0 = the LSTM's final cells (backward, forward).
- decoder, each step: the previous action's 128-d angle feature -> Linear(64) + tanh; soft attention over the
  36 view features queried by the previous attention output h~; an LSTMCell(512) whose recurrent input is h~
  (not h); soft attention over the instruction gives the new h~; candidate logits are bilinear
  (candidate . W h~). STOP is an all-zero candidate, so its logit is exactly 0: here it is action 0.
- critic: MLP 512 -> 512 -> 1 reading h.

Feature dropout (0.3) hits the image dims of views and candidates at every step (fresh mask each step), except
on a back-translation pass, where the environmental-dropout mask replaces it (``drop_features=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from agents.envdrop import FastDropout, drop_image_features
from agents.masked_lstm import masked_bilstm
from agents.optim import RMSprop
from agents.step_grads import DeferredContext, Layers, PlainLayers


@dataclass
class FollowerConfig:
    """Sizes and regularisation of the follower (defaults: EnvDrop / CLIP-ViL's run scripts)."""

    vocab_size: int
    feature_dim: int  # D, image-feature dims (640 for CLIP-RN50x4); inputs are D + angle_dim wide
    angle_dim: int = 128  # [sin h, cos h, sin e, cos e] x 32
    word_dim: int = 256
    hidden_dim: int = 512  # decoder LSTM and encoder output (two directions of hidden_dim // 2)
    action_dim: int = 64  # embedding of the previous action's angle feature
    dropout: float = 0.5
    feature_dropout: float = 0.3  # element-wise, image dims only
    pad_id: int = 0

    def __post_init__(self) -> None:
        assert self.vocab_size > 0 and self.feature_dim > 0, "vocab_size and feature_dim must be positive"
        assert self.hidden_dim % 2 == 0, f"hidden_dim {self.hidden_dim} must be even (bidirectional encoder)"
        assert self.angle_dim % 4 == 0, f"angle_dim {self.angle_dim} must be a multiple of 4"


def angle_feature(heading: torch.Tensor, elevation: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """EnvDrop's angle feature ``[sin h, cos h, sin e, cos e]`` repeated ``dim // 4`` times: (B,) -> (B, dim)."""
    four = torch.stack([heading.sin(), heading.cos(), elevation.sin(), elevation.cos()], dim=-1)  # (B, 4)
    return four.repeat(1, dim // 4).float()


class SoftDotAttention(nn.Module):
    """Luong "general" attention: scores = context . W_in q; optionally h~ = tanh(W_out [weighted; q]).

    ``query`` is (B, Q) or (B, M, Q) (M queries sharing one context); ``context`` is (B, T, C), or for (B, Q)
    queries a :class:`~agents.step_grads.DeferredContext` (a training rollout's word contexts, whose gradient
    is made once per rollout); ``mask`` is (B, T), True where a context entry must be ignored. Returns
    (weighted context or h~, attention or raw scores). ``layers`` applies the linear maps (a rollout's
    :class:`~agents.step_grads.StepGrads` for (B, Q) queries).
    """

    def __init__(self, query_dim: int, ctx_dim: int, output_tilde: bool = True) -> None:
        super().__init__()
        self.linear_in = nn.Linear(query_dim, ctx_dim, bias=False)
        self.linear_out = nn.Linear(query_dim + ctx_dim, query_dim, bias=False) if output_tilde else None

    def scores(self, query: torch.Tensor, context: torch.Tensor, layers: Layers = PlainLayers) -> torch.Tensor:
        """Raw scores context . W_in q: (B, [M,] T)."""
        single = query.dim() == 2
        q = layers.linear(self.linear_in, query)  # (B, [M,] C)
        s = torch.bmm(q.unsqueeze(1) if single else q, context.transpose(1, 2))  # (B, M, T)
        return s.squeeze(1) if single else s

    def forward(self, query: torch.Tensor, context: torch.Tensor | DeferredContext,
                mask: torch.Tensor | None = None, layers: Layers = PlainLayers) -> tuple[torch.Tensor, torch.Tensor]:
        single = query.dim() == 2
        if isinstance(context, DeferredContext):  # a training rollout's word contexts (StepGrads.context)
            assert single, "a DeferredContext takes one query per row"
            weighted, attn = context.attend(layers.linear(self.linear_in, query), mask)  # (B, C), (B, T)
            return self._output(weighted, query, attn, layers)
        s = self.scores(query, context, layers)
        attn = _masked_softmax(s.unsqueeze(1) if single else s, mask)  # (B, M, T)
        weighted = torch.bmm(attn, context)  # (B, M, C)
        if single:
            weighted, attn = weighted.squeeze(1), attn.squeeze(1)
        return self._output(weighted, query, attn, layers)

    def at_positions(self, query: torch.Tensor, where: torch.Tensor, positions: int, context: torch.Tensor,
                     mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries (N, Q) at the flat positions ``where`` (N,) of a (B, ``positions``) grid, each attending over
        its row's context (B, T, C): ``forward(query, context[row], mask[row])`` with ``row = where //
        positions``, but each row's queries meet its context in one batched product (an empty position costs a
        query of zeros over T entries), where a copy of the context per query would have autograd add up the
        context's gradient query by query."""
        B, T, C = context.shape
        q = self.linear_in(query)  # (N, C)
        grid = q.new_zeros(B * positions, C).index_copy(0, where, q).view(B, positions, C)
        attn = _masked_softmax(torch.bmm(grid, context.transpose(1, 2)), mask)  # (B, M, T)
        weighted = torch.bmm(attn, context).view(B * positions, C).index_select(0, where)  # (N, C)
        return self._output(weighted, query, attn.view(B * positions, T).index_select(0, where))

    def _output(self, weighted: torch.Tensor, query: torch.Tensor, attn: torch.Tensor,
                layers: Layers = PlainLayers) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted context, attention), or (h~, attention) with ``linear_out``."""
        if self.linear_out is None:
            return weighted, attn
        return torch.tanh(layers.linear(self.linear_out, torch.cat([weighted, query], -1))), attn


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim of scores (B, M, T), -inf where ``mask`` (B, T) is True."""
    return torch.softmax(scores if mask is None else scores.masked_fill(mask.unsqueeze(1), float("-inf")), dim=-1)


class InstructionEncoder(nn.Module):
    """Embedding -> BiLSTM over the real words (masked_bilstm); returns the word contexts and the decoder's initial (h~, c)."""

    def __init__(self, cfg: FollowerConfig) -> None:
        super().__init__()
        self.pad_id = cfg.pad_id
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=cfg.pad_id)
        self.drop = FastDropout(cfg.dropout)
        self.lstm = nn.LSTM(cfg.word_dim, cfg.hidden_dim // 2, batch_first=True, bidirectional=True)
        self.encoder2decoder = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)

    def forward(self, instr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """instr (B, L) int64, <BOS> ... <EOS> then pad. Returns ctx (B, L', H), ctx_mask (B, L') True on pad,
        h0 (B, H), c0 (B, H), where L' is the longest instruction of the batch."""
        assert instr.dim() == 2, f"instructions must be (B, L) token ids, got shape {tuple(instr.shape)}"
        valid = instr != self.pad_id  # (B, L)
        lengths = valid.sum(1).clamp(min=1)
        longest = int(lengths.max())
        instr, valid = instr[:, :longest], valid[:, :longest]
        embeds = self.drop(self.embedding(instr))  # (B, L', W)
        ctx, c_n = masked_bilstm(self.lstm, embeds, lengths)  # (B, L', H), zero on padding; as a packed run
        c0 = torch.cat([c_n[-1], c_n[-2]], dim=1)  # EnvDrop's order: backward then forward final cell
        # Max-pool over real words only (EnvDrop pools the zero-padded tensor, so padding can win a channel).
        pooled = ctx.masked_fill(~valid.unsqueeze(-1), float("-inf")).max(dim=1).values  # (B, H)
        h0 = torch.tanh(self.encoder2decoder(pooled))
        return self.drop(ctx), ~valid, h0, c0


class ActionDecoder(nn.Module):
    """One decision step of the follower (EnvDrop's AttnDecoderLSTM)."""

    def __init__(self, cfg: FollowerConfig) -> None:
        super().__init__()
        self.image_dim = cfg.feature_dim
        self.feature_dropout = cfg.feature_dropout
        full = cfg.feature_dim + cfg.angle_dim
        self.embedding = nn.Sequential(nn.Linear(cfg.angle_dim, cfg.action_dim), nn.Tanh())
        self.drop = FastDropout(cfg.dropout)
        self.lstm = nn.LSTMCell(cfg.action_dim + full, cfg.hidden_dim)
        self.feat_att_layer = SoftDotAttention(cfg.hidden_dim, full, output_tilde=False)
        self.attention_layer = SoftDotAttention(cfg.hidden_dim, cfg.hidden_dim)
        self.candidate_att_layer = SoftDotAttention(cfg.hidden_dim, full, output_tilde=False)

    def forward(self, prev_angle: torch.Tensor, views: torch.Tensor, cands: torch.Tensor,
                h_tilde: torch.Tensor, c: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor,
                drop_features: bool = True, return_attention: bool = False,
                layers: Layers = PlainLayers, overwrite_features: bool = False) -> tuple[torch.Tensor, ...]:
        """prev_angle (B, 128); views (B, 36, D+128); cands (B, K, D+128); h_tilde, c (B, H); ctx (B, L, H).

        Returns h (B, H) for the critic, c (B, H), the new h~ (B, H) and candidate logits (B, K); with
        ``return_attention`` also the attention over the instruction's words (B, L), for replays. ``layers``:
        a training rollout's :class:`~agents.step_grads.StepGrads` (one weight gradient per rollout). With
        ``overwrite_features`` views and cands are the caller's own: feature dropout multiplies them in place.
        """
        action = self.drop(self.embedding[1](layers.linear(self.embedding[0], prev_angle)))  # (B, 64)
        if drop_features:
            p, D, training, inplace = self.feature_dropout, self.image_dim, self.training, overwrite_features
            views = drop_image_features(views, p, D, training, inplace)
            cands = drop_image_features(cands, p, D, training, inplace)
        seen, _ = self.feat_att_layer(self.drop(h_tilde), views, layers=layers)  # (B, D+128)
        h, c = layers.lstm_cell(self.lstm, torch.cat([action, seen], dim=1), (h_tilde, c))
        h_tilde, words = self.attention_layer(self.drop(h), ctx, ctx_mask, layers=layers)  # (B, H), (B, L)
        logits = self.candidate_att_layer.scores(self.drop(h_tilde), cands, layers=layers)  # (B, K)
        return (h, c, h_tilde, logits, words) if return_attention else (h, c, h_tilde, logits)


class Critic(nn.Module):
    """State value V(h): Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, cfg: FollowerConfig) -> None:
        super().__init__()
        self.state2value = nn.Sequential(nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.ReLU(),
                                         FastDropout(cfg.dropout), nn.Linear(cfg.hidden_dim, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.state2value(h).squeeze(-1)  # (...,)


class Follower(nn.Module):
    """Encoder + decoder + critic; each part has its own optimiser, as in EnvDrop."""

    def __init__(self, cfg: FollowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = InstructionEncoder(cfg)
        self.decoder = ActionDecoder(cfg)
        self.critic = Critic(cfg)

    def action_logits(self, cand_logits: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """Prepend STOP's logit (0, the all-zero candidate) and mask invalid actions: (B, K) -> (B, K+1)."""
        stop = cand_logits.new_zeros(cand_logits.shape[0], 1)
        logits = torch.cat([stop, cand_logits], dim=1)
        assert logits.shape == action_mask.shape, \
            f"action_mask {tuple(action_mask.shape)} does not match 1 + candidates {tuple(logits.shape)}"
        return logits.masked_fill(~action_mask, float("-inf"))


def make_follower_optimizers(follower: Follower, lr: float = 1e-4) -> dict[str, RMSprop]:
    """EnvDrop's three RMSprop optimisers (encoder, decoder, critic): :mod:`agents.optim`'s, which do torch's
    arithmetic without importing torch._dynamo."""
    return {name: RMSprop(getattr(follower, name).parameters(), lr=lr)
            for name in ("encoder", "decoder", "critic")}


def load_envdrop_follower(follower: Follower, states: dict) -> list[str]:
    """Load an EnvDrop / CLIP-ViL listener snapshot (``{"encoder": {"state_dict": ...}, ...}``).

    Returns the snapshot keys that were not used (EnvDrop keeps attention output layers it never applies).
    """
    unused = []
    for name in ("encoder", "decoder", "critic"):
        module = getattr(follower, name)
        own = module.state_dict()
        theirs = states[name]["state_dict"] if "state_dict" in states[name] else states[name]
        kept = {k: v for k, v in theirs.items() if k in own}
        unused += [f"{name}.{k}" for k in theirs if k not in own]
        missing = [k for k in own if k not in kept]
        if missing:
            raise ValueError(f"EnvDrop snapshot part {name!r} lacks {missing}: is it a listener checkpoint?")
        module.load_state_dict(kept)
    return unused
