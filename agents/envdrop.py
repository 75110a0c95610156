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

import torch


def draw_env_mask(feature_dim: int, p: float, batch_size: int = 1, per_env: bool = False,
                  device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """One environmental-dropout channel mask: shape (1, D) shared by the batch, or (B, D) with ``per_env``.

    Each channel is 0 with probability ``p`` and ``1 / (1 - p)`` otherwise.
    """
    assert 0.0 <= p < 1.0, f"env dropout probability must be in [0, 1), got {p}"
    rows = batch_size if per_env else 1
    keep = torch.rand(rows, feature_dim, device=device, generator=generator) >= p  # (rows, D)
    return keep.float() / (1.0 - p)


def apply_image_mask(features: torch.Tensor, mask: torch.Tensor, image_dim: int) -> torch.Tensor:
    """Multiply the image part (first ``image_dim`` dims) of ``features`` by ``mask``; angle dims pass through.

    ``features`` is (B, ..., D + A) (views (B, 36, D + A), candidates (B, K, D + A), speaker steps
    (B, T, 36, D + A)); ``mask`` is (1, D) or (B, D) and broadcasts over every middle dim (views, steps).
    """
    assert mask.shape[-1] == image_dim, f"mask has {mask.shape[-1]} channels, features have {image_dim} image dims"
    assert mask.shape[0] in (1, features.shape[0]), \
        f"mask batch {mask.shape[0]} must be 1 (shared) or the feature batch {features.shape[0]}"
    view = mask.reshape(mask.shape[0], *([1] * (features.dim() - 2)), image_dim)
    return torch.cat([features[..., :image_dim] * view, features[..., image_dim:]], dim=-1)


class FastDropout(torch.nn.Module):
    """Inverted dropout like ``nn.Dropout``, drawing its mask with ``torch.rand`` (about 3x faster on CPU).

    No parameters, so state dicts are unchanged; identity in eval mode.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        assert 0.0 <= p < 1.0, f"dropout probability must be in [0, 1), got {p}"
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device, dtype=x.dtype).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_image_features(features: torch.Tensor, p: float, image_dim: int, training: bool) -> torch.Tensor:
    """EnvDrop's feature dropout: element-wise dropout on the image part only (angle dims kept)."""
    if not training or p == 0.0:
        return features
    image = features[..., :image_dim]
    # rand >= p, scaled in place: the same inverted dropout as F.dropout, ~3x faster on CPU (fewer passes)
    kept = torch.rand(image.shape, device=image.device, dtype=image.dtype).ge_(p).mul_(1.0 / (1.0 - p))
    return torch.cat([kept.mul_(image), features[..., image_dim:]], dim=-1)
