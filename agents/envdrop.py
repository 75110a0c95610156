"""Environmental dropout (Tan et al. 2019) and the element-wise feature dropout of EnvDrop.

Both act on the image part of a feature vector only: the last ``angle_dim`` (128) dims of every view and
candidate feature are the angle feature and are never dropped.

Environmental dropout simulates an unseen house by removing whole feature channels consistently everywhere
the agent looks. EnvDrop's code (the default here, and what reproduces the published numbers) draws one
channel mask of the image-feature size per rollout and shares it across the whole batch, all 36 views, every
step, and the speaker that writes that batch's instructions. The paper describes one mask per environment;
``per_env=True`` draws one mask per batch element instead. Kept channels are scaled by ``1 / (1 - p)`` (an
inverted-dropout mask applied to a vector of ones, as EnvDrop does).
"""

from __future__ import annotations

import math

import numpy as np
import torch

LEVELS = 65536  # dropout draws are 16-bit: p is applied as round(p * 65536) / 65536 (off by at most 8e-6)


def draw_env_mask(feature_dim: int, p: float, batch_size: int = 1, per_env: bool = False,
                  device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """One environmental-dropout channel mask: shape (1, D) shared by the batch, or (B, D) with ``per_env``.

    Each channel is 0 with probability ``p`` and ``1 / (1 - p)`` otherwise.
    """
    assert 0.0 <= p < 1.0, f"env dropout probability must be in [0, 1), got {p}"
    rows = batch_size if per_env else 1
    keep = torch.rand(rows, feature_dim, device=device, generator=generator) >= p  # (rows, D)
    return keep.float() / (1.0 - p)


def apply_image_mask(features: torch.Tensor, mask: torch.Tensor, image_dim: int, inplace: bool = False
                     ) -> torch.Tensor:
    """Multiply the image part (first ``image_dim`` dims) of ``features`` by ``mask``; angle dims pass through.

    ``features`` is (B, ..., D + A) (views (B, 36, D + A), candidates (B, K, D + A), speaker steps
    (B, T, 36, D + A)); ``mask`` is (1, D) or (B, D) and broadcasts over every middle dim (views, steps).
    With ``inplace`` the caller's own ``features`` are multiplied and returned: no copy (the speaker's steps are
    ~50 MB at batch 64).
    """
    assert mask.shape[-1] == image_dim, f"mask has {mask.shape[-1]} channels, features have {image_dim} image dims"
    assert mask.shape[0] in (1, features.shape[0]), \
        f"mask batch {mask.shape[0]} must be 1 (shared) or the feature batch {features.shape[0]}"
    view = mask.reshape(mask.shape[0], *([1] * (features.dim() - 2)), image_dim)
    if inplace:
        features[..., :image_dim].mul_(view)
        return features
    return torch.cat([features[..., :image_dim] * view, features[..., image_dim:]], dim=-1)


def keep_mask(shape: tuple[int, ...], p: float, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """An inverted-dropout mask of ``shape``: 0 with probability ``p``, ``1 / (1 - p)`` otherwise.

    The draws are 16 bits each, four from one 64-bit random word, so a mask costs a quarter of the random
    numbers of ``torch.rand`` (the mask of the 36 views' features, drawn every step, was the largest part of a
    follower step's forward time on a CPU). On a CPU the words come from numpy's SFC64 generator, seeded by one
    draw from torch's, so ``torch.manual_seed`` still fixes every mask: it makes 368,640 words (a batch of 64's
    views) in 0.5 ms where torch's CPU generator takes 1.2, and a follower iteration is about 2% faster.
    """
    n = math.prod(shape)
    if torch.device(device).type == "cpu":
        seed = int(torch.randint(2**62, (1,)))
        words = torch.from_numpy(np.random.SFC64(seed).random_raw((n + 3) // 4).view(np.int64))
    else:
        words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    draws = words.view(torch.int16)[:n].view(shape)  # uniform over the 65,536 int16 values
    keep = torch.empty(shape, dtype=dtype, device=device)  # compared straight into the mask's dtype: a bool
    torch.ge(draws, round(p * LEVELS) - LEVELS // 2, out=keep)  # tensor then cast costs 2.4x the time on a CPU
    return keep.mul_(1.0 / (1.0 - p))


class FastDropout(torch.nn.Module):
    """Inverted dropout like ``nn.Dropout``, drawing its mask with :func:`keep_mask` (faster on a CPU).

    No parameters, so state dicts are unchanged; identity in eval mode.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        assert 0.0 <= p < 1.0, f"dropout probability must be in [0, 1), got {p}"
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * keep_mask(x.shape, self.p, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_image_features(features: torch.Tensor, p: float, image_dim: int, training: bool,
                        inplace: bool = False) -> torch.Tensor:
    """EnvDrop's feature dropout: element-wise dropout on the image part only (angle dims kept). With ``inplace``
    the image part of the caller's own ``features`` is multiplied and they are returned: no copy."""
    if not training or p == 0.0:
        return features
    image = features[..., :image_dim]
    mask = keep_mask(image.shape, p, image.dtype, image.device)
    if inplace:
        image.mul_(mask)
        return features
    return torch.cat([mask.mul_(image), features[..., image_dim:]], dim=-1)
