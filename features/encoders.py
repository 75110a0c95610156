"""CLIP image encoders for the CLIP-ViL variants, on open_clip: one narrow factory and explicit image handling.

``load_encoder(name, weights)`` builds the image tower of RN50, RN101, RN50x4, ViT-B-32 or ViT-B-16 and
returns an :class:`Encoder` that prepares images the way CLIP does and gives

* ``pooled(images) -> [B, E]``: CLIP's image embedding, unnormalised ``encode_image`` (attention pooling for
  the ResNets, the projected CLS token for the ViTs): 1024 (RN50, RN101), 640 (RN50x4), 512 (ViT-B-32/16).
  This is what CLIP-ViL's navigation features are.
* ``grid(images) -> [B, C, h, w]``: the spatial features VQA / captioning use: the ResNet's last feature map
  before attention pooling, or the ViT's patch tokens after ``ln_post`` (unprojected) laid out on their grid.

Weights: an open_clip pretrained tag (``"openai"``: downloads, so needs a network or a warm cache), a local
file (plain state dict, a training checkpoint dict holding it under ``"state_dict"``/``"model"``, a
``.safetensors`` file, or OpenAI's TorchScript ``.pt`` archive), or None for random initialisation (tests).
Full-CLIP state dicts (``visual.*`` keys, text tower ignored) and image-tower-only ones both load.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import open_clip
import torch
import torch.nn as nn
from torchvision.transforms.v2 import functional as TF

from envs.datadir import DataError, data_error
from envs.validate import torch_load

ENCODERS = ("RN50", "RN101", "RN50x4", "ViT-B-32", "ViT-B-16")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Crop = Literal["center", "none"]
ChannelOrder = Literal["rgb", "bgr_as_rgb"]
Images = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]


def list_encoders() -> dict[str, list[str]]:
    """The supported encoder names and the open_clip pretrained tags available for each."""
    return {name: open_clip.list_pretrained_tags_by_model(name) for name in ENCODERS}


@dataclass
class Encoder:
    """A CLIP image tower with CLIP's preprocessing.

    Attributes:
        name: the open_clip model name (one of :data:`ENCODERS`).
        weights: what was loaded (tag, file path, or ``"random"``).
        visual: the image tower (``nn.Module``, eval mode).
        image_size: the square input side the model expects (224; 288 for RN50x4).
        embed_dim: size of :meth:`pooled` vectors; ``grid_dim`` the channels of :meth:`grid`.
        crop: ``"center"`` (CLIP's resize of the short side then centre crop, as CLIP-ViL did on the 640x480
            views) or ``"none"`` (the whole view resized to ``image_size`` x ``image_size``, squeezing its 4:3
            aspect; every pixel of the view is seen, at the cost of horizontal compression).
        channel_order: ``"rgb"`` (correct) or ``"bgr_as_rgb"``: swap R and B before normalising, reproducing
            CLIP-ViL's extraction that fed MatterSim's BGR buffer to CLIP as if it were RGB.
    """

    name: str
    weights: str
    visual: nn.Module
    image_size: int
    embed_dim: int
    grid_dim: int
    device: torch.device
    dtype: torch.dtype
    crop: Crop = "center"
    channel_order: ChannelOrder = "rgb"

    @property
    def is_vit(self) -> bool:
        return self.name.startswith("ViT")

    def columns_read(self, width: int, height: int) -> tuple[int, int]:
        """The pixel columns ``(first, end)`` of a ``width`` x ``height`` image that :meth:`preprocess` reads.

        A centre crop of a wider-than-tall view drops its sides, so a renderer need not draw them
        (:func:`envs.kernel.skybox.render_views` ``columns=``); the rest may be anything. See :func:`_columns_read`.
        """
        return _columns_read(self.image_size, self.crop, width, height)

    def preprocess(self, images: Images) -> torch.Tensor:
        """RGB images to the model's normalised input ``[B, 3, S, S]`` on its device and dtype.

        Accepted: numpy ``uint8`` HWC (one ``[H, W, 3]`` or a batch ``[B, H, W, 3]``), torch CHW (``[3, H, W]``
        or ``[B, 3, H, W]``; uint8 0..255 or float 0..1), or a list of those (same size). Resizing is
        bicubic with antialiasing on uint8 (torchvision's, which tracks PIL's within one grey level).
        """
        batch = _as_chw_batch(images).to(self.device)  # [B, 3, H, W]
        size = self.image_size
        if self.crop == "center":
            batch = TF.resize(batch, size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            batch = TF.center_crop(batch, [size, size])
        elif self.crop == "none":
            batch = TF.resize(batch, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        else:
            raise ValueError(f"crop must be 'center' or 'none', got {self.crop!r}")
        batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float().clamp(0, 1)
        if self.channel_order == "bgr_as_rgb":
            batch = batch.flip(1)
        elif self.channel_order != "rgb":
            raise ValueError(f"channel_order must be 'rgb' or 'bgr_as_rgb', got {self.channel_order!r}")
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        return ((batch - mean) / std).to(self.dtype)

    @torch.inference_mode()
    def encode(self, images: Images) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs of one forward pass: ``(pooled [B, E], grid [B, C, h, w])``, float32."""
        pooled, grid = self.forward(self.preprocess(images))
        return pooled.float(), grid.float()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled [B, E], grid [B, C, h, w])`` of preprocessed images ``x [B, 3, S, S]``, with gradients
        (training through the encoder); :meth:`encode` is the inference path."""
        visual = self.visual
        if self.is_vit:
            pooled, tokens = visual(x)  # output_tokens is set: [B, E], [B, h*w, C]
            side = int(round(tokens.shape[1] ** 0.5))
            grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)  # [B, C, h, w]
        else:
            grid = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))  # [B, C, h, w]
            pooled = visual.attnpool(grid)  # [B, E]
        return pooled, grid

    def pooled(self, images: Images) -> torch.Tensor:
        """CLIP's image embedding ``[B, E]`` (unnormalised ``encode_image``)."""
        return self.encode(images)[0]

    def grid(self, images: Images) -> torch.Tensor:
        """Spatial features ``[B, C, h, w]``: ResNet final map (before attnpool) or ViT patch tokens."""
        return self.encode(images)[1]


@lru_cache(maxsize=16)
def _columns_read(size: int, crop: Crop, width: int, height: int) -> tuple[int, int]:
    """Columns with any weight in the resize (+ crop) of :meth:`Encoder.preprocess`: ``(first, end)``.

    Found, not derived: the gradient of the float resize's output sum with respect to its input is non-zero
    exactly where the antialiased bicubic kernel reaches (the uint8 resize uses the same kernel supports), and
    one column of margin on each side covers a weight that rounds differently.
    """
    probe = torch.ones(1, 1, height, width, requires_grad=True)
    if crop == "center":
        out = TF.center_crop(TF.resize(probe, size, interpolation=TF.InterpolationMode.BICUBIC, antialias=True),
                             [size, size])
    else:
        out = TF.resize(probe, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    (out * torch.rand_like(out).add_(1)).sum().backward()  # random output weights: no cancellation to zero
    used = (probe.grad[0, 0] != 0).any(0).nonzero().flatten()
    return max(int(used[0]) - 1, 0), min(int(used[-1]) + 2, width)


def _as_chw_batch(images: Images) -> torch.Tensor:
    """Normalise the accepted image layouts to one ``[B, 3, H, W]`` tensor (dtype kept)."""
    if isinstance(images, (list, tuple)):
        parts = [_as_chw_batch(im) for im in images]
        if len({tuple(p.shape[1:]) for p in parts}) != 1:
            raise ValueError("images in one list must share their size; resize or batch them separately")
        return torch.cat(parts)
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.shape[-1] != 3 or images.ndim not in (3, 4):
            raise ValueError(f"numpy images must be uint8 HWC [H, W, 3] or [B, H, W, 3], got {images.dtype} "
                             f"{images.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        tensor = tensor[None] if tensor.ndim == 3 else tensor
        return tensor.permute(0, 3, 1, 2)
    if isinstance(images, torch.Tensor):
        tensor = images[None] if images.ndim == 3 else images
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ValueError(f"torch images must be CHW [3, H, W] or [B, 3, H, W], got {tuple(images.shape)}")
        return tensor
    raise TypeError(f"unsupported image type {type(images).__name__}")


def _offline() -> bool:
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes") for var in ("HF_HUB_OFFLINE", "CLIPVIL_OFFLINE"))


def _reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tag_cached(name: str, tag: str) -> bool:
    """Whether open_clip could load this tag without a network (HF cache or its URL download folder)."""
    cfg = open_clip.get_pretrained_cfg(name, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # "org/model/" means the default file names
        for candidate in ([filename] if filename else []) + ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            if isinstance(try_to_load_from_cache(repo, candidate), str):
                return True
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).exists()


def _offline_error(name: str, tag: str, why: str) -> DataError:
    return data_error(
        f"--weights {tag}",
        f"cannot download open_clip weights {name}/{tag}: {why}",
        "Pass a local file instead (--weights /path/to/weights.pt|.safetensors|.bin: a state dict, a checkpoint "
        "dict with 'state_dict' or 'model', or OpenAI's RN50x4.pt), e.g. saved elsewhere with "
        "torch.save(open_clip.create_model(NAME, pretrained=TAG).state_dict(), FILE)",
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights from a local file: safetensors, a (checkpoint) state dict, or a TorchScript archive."""
    path = Path(path)
    if not path.is_file():
        raise data_error(path, "weights file not found", "Give an existing file or an open_clip tag (see --help)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch_load(path, "weights file (a state dict)", "Save weights with torch.save(model.state_dict(), "
                               "FILE), or pass OpenAI's TorchScript .pt as it was downloaded")
        except DataError:  # OpenAI's .pt files are TorchScript archives
            try:
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
            except Exception:
                raise data_error(path, "is neither a torch state dict nor a TorchScript archive",
                                 "Save weights with torch.save(model.state_dict(), FILE)") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise data_error(path, "does not hold a state dict of tensors", "Save with torch.save(model.state_dict(), FILE)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _visual_state(state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    if visual:
        return visual
    if any(k.startswith(("transformer.", "token_embedding")) for k in state):
        raise data_error(path, "holds a CLIP text tower but no 'visual.*' keys", "Give a file with the image tower")
    return state  # an image-tower-only state dict


def _build_visual(name: str) -> nn.Module:
    """The image tower alone (the text tower is never used here, and building it costs seconds).

    Uses open_clip's own tower builder so the module names match its (and OpenAI's) ``visual.*`` weights.
    OpenAI's weights were trained with QuickGELU (the ResNet towers have no GELU either way).
    """
    from open_clip.model import _build_vision_tower

    cfg = open_clip.get_model_config(name)
    return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], quick_gelu=True)


def load_encoder(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    crop: Crop = "center",
    channel_order: ChannelOrder = "rgb",
) -> Encoder:
    """Build the image tower of a CLIP-ViL encoder variant with its preprocessing.

    Args:
        name: RN50, RN101, RN50x4, ViT-B-32 or ViT-B-16 (open_clip names; ``ViT-B/32`` style also accepted).
        weights: None (random init), an open_clip tag such as ``"openai"``, or a local weights file.
        device: where the model runs; precision: ``fp32``, ``fp16`` (CLIP-ViL's, GPU) or ``bf16``.
        crop, channel_order: see :class:`Encoder`.

    Local files are taken to hold OpenAI-trained weights (QuickGELU activations), as CLIP-ViL used.
    A tag without a network (``HF_HUB_OFFLINE=1``, or no route to the hub) and not already cached fails at
    once with a :class:`DataError` that says how to pass a local file.
    """
    name = name.replace("/", "-")
    visual, label = _load_tower(name, weights, full=False)
    return _wrap(name, label, visual, device, precision, crop, channel_order)


def _load_tower(name: str, weights: str | os.PathLike | None, full: bool) -> tuple[nn.Module, str]:
    """The image tower (``full=False``) or the whole CLIP model (both towers) with ``weights``, and what was
    loaded (``"random"``, the file, or the tag). See :func:`load_encoder` for the accepted weights."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    is_file = weights is not None and (Path(weights).suffix != "" or os.sep in str(weights) or Path(weights).exists())
    if weights is None or is_file:
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=True) if full else _build_visual(name)
        if is_file:
            state = read_state_dict(weights)
            if not full:
                state = _visual_state(state, str(weights))
            elif not any(k.startswith(("transformer.", "token_embedding")) for k in state):
                raise data_error(weights, "holds no CLIP text tower (no 'transformer.*' keys)",
                                 "The text side needs a full CLIP state dict (both towers)")
            try:
                missing, _ = model.load_state_dict(state, strict=False)
            except RuntimeError as error:  # shape mismatches: weights of another variant
                raise data_error(weights, f"does not fit {name}: {str(error).splitlines()[-1].strip()}",
                                 f"Check that the file holds {name} weights") from None
            if missing:
                raise data_error(weights, f"lacks {len(missing)} {name} weights, e.g. {missing[:3]}",
                                 f"Check that the file holds {name} weights")
        return model, "random" if weights is None else str(weights)
    tag = str(weights)
    if tag not in open_clip.list_pretrained_tags_by_model(name):
        raise data_error(f"--weights {tag}", f"is neither a file nor an open_clip tag of {name}",
                         f"Tags: {', '.join(open_clip.list_pretrained_tags_by_model(name))}")
    if not _tag_cached(name, tag):
        if _offline():
            raise _offline_error(name, tag, "offline mode (HF_HUB_OFFLINE / CLIPVIL_OFFLINE) and not cached")
        if not _reachable():
            raise _offline_error(name, tag, "no network connection to huggingface.co")
    quick_gelu = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
    model = open_clip.create_model(name, pretrained=tag, force_quick_gelu=quick_gelu)
    return (model if full else model.visual), tag


def _wrap(name: str, label: str, visual: nn.Module, device: str | torch.device, precision: str, crop: Crop,
          channel_order: ChannelOrder) -> Encoder:
    """An :class:`Encoder` around an image tower, moved to ``device`` in ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if name.startswith("ViT"):
        visual.output_tokens = True
    visual = visual.to(device=device, dtype=PRECISIONS[precision]).eval()
    image_size = visual.image_size[0] if isinstance(visual.image_size, tuple) else int(visual.image_size)
    if name.startswith("ViT"):
        embed_dim, grid_dim = visual.proj.shape[1], visual.proj.shape[0]
    else:
        embed_dim, grid_dim = visual.attnpool.c_proj.out_features, visual.attnpool.k_proj.in_features
    return Encoder(name, label, visual, image_size, embed_dim, grid_dim, device, PRECISIONS[precision], crop,
                   channel_order)


@dataclass
class Clip:
    """A whole CLIP model: the image side as an :class:`Encoder` and the text tower of the same model.

    Used where text meets the image embedding (the zero-shot VQA probe, Grad-CAM for a text).
    """

    encoder: Encoder
    model: nn.Module  # open_clip's CLIP; ``encoder.visual`` is its ``visual``
    tokenizer: object

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP's text embedding ``[T, E]`` (unnormalised ``encode_text``), float32.

        The text transformer is causal and pools at the end-of-text token, so the padding after the longest
        text of the batch cannot change the result: the batch runs on its real length instead of open_clip's
        77 tokens (prompts of 15-20 tokens run about four times faster on a CPU; a test checks the outputs
        equal ``model.encode_text``'s).
        """
        from open_clip.transformer import text_global_pool

        m = self.model
        tokens = self.tokenizer(list(texts)).to(self.encoder.device)  # [T, 77], 0-padded after <eot>
        length = int((tokens != 0).sum(1).max())
        tokens = tokens[:, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)  # [T, L, W]
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:length, :length]))
        x = text_global_pool(x, tokens, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return x.float()


def load_clip(name: str, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
              precision: str = "fp32", crop: Crop = "center", channel_order: ChannelOrder = "rgb") -> Clip:
    """Both towers of a CLIP-ViL variant (see :func:`load_encoder`; a weights file must hold the text tower
    too). The tokenizer is open_clip's, whose vocabulary ships with the package (no network)."""
    name = name.replace("/", "-")
    model, label = _load_tower(name, weights, full=True)
    model = model.to(device=torch.device(device), dtype=PRECISIONS.get(precision, torch.float32)).eval()
    encoder = _wrap(name, label, model.visual, device, precision, crop, channel_order)
    return Clip(encoder, model, open_clip.get_tokenizer(name))
