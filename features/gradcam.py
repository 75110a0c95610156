"""``python -m features.gradcam``: Grad-CAM maps of CLIP's pooled image feature for a text or an answer (the
CLIP-ViL paper's Figure 3), one per CLIP variant, saved as heat maps over the input.

The target is the cosine similarity between the image embedding (``encode_image``) and the text tower's
embedding of ``--text`` (or of the zero-shot prompt ``"question: Q answer: A"`` with ``--question`` and
``--answer``), computed by the ``grad-cam`` library (``pytorch_grad_cam.GradCAM``) at the last block of the
image tower: ResNets' ``layer4`` (its output is the grid before attention pooling), ViTs' last residual block
(patch tokens reshaped to their grid, the class token dropped). The input is what CLIP sees (the image
resized and centre-cropped to the model's square), and each map is drawn over it.

Writes ``OUT/{image}_{encoder}.png`` per variant and ``OUT/{image}_gradcam.png`` with all of them side by side.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from envs.atomic import atomic_path
from envs.cli import command, parse_config
from envs.datadir import DataError
from features.encoders import CLIP_MEAN, CLIP_STD, ENCODERS, Clip, load_clip
from features.grid import read_image


@dataclass
class GradCamConfig:
    """Options of ``python -m features.gradcam``."""

    image: Path
    """the image (.jpg/.png)"""
    out: Path
    """folder for the heat-map images"""
    encoders: list[str] = field(default_factory=lambda: ["RN50"])
    """CLIP variants, one map each (RN50 RN101 RN50x4 ViT-B-32 ViT-B-16)"""
    weights: list[str] | None = None
    """weights per variant (open_clip tag or full CLIP file), in --encoders order; default random init"""
    text: str = "a photo"
    """the text whose similarity to the image is explained"""
    question: str | None = None
    """with --answer: explain the zero-shot VQA prompt "question: Q answer: A" instead of --text"""
    answer: str | None = None
    """the answer of --question"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device"""


class _Pooled(nn.Module):
    """The image tower as a module whose output is the pooled embedding ``[B, E]`` (what Grad-CAM explains)."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out  # ViTs with output_tokens give (pooled, tokens)


def _vit_grid(tokens: torch.Tensor) -> torch.Tensor:
    """ViT block output ``[B, 1 + h*w, C]`` -> ``[B, C, h, w]`` (class token dropped)."""
    cells = tokens[:, 1:]
    side = int(round(cells.shape[1] ** 0.5))
    return cells.transpose(1, 2).reshape(cells.shape[0], -1, side, side)


def gradcam_map(clip: Clip, image: torch.Tensor, text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(cam [S, S] in 0..1, the model's input image [S, S, 3] in 0..1)`` for one uint8 image ``[3, H, W]``."""
    from pytorch_grad_cam import GradCAM

    encoder = clip.encoder
    x = encoder.preprocess(image).float()  # [1, 3, S, S]
    target_text = F.normalize(clip.encode_text([text])[0], dim=0)  # [E]
    if encoder.is_vit:
        layer, reshape = encoder.visual.transformer.resblocks[-1], _vit_grid
    else:
        layer, reshape = encoder.visual.layer4[-1], None
    model = _Pooled(encoder.visual).float()
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        heat = cam(input_tensor=x, targets=[lambda out: F.cosine_similarity(out, target_text.to(out), dim=0)])[0]
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    shown = (x[0].cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
    return heat, shown


def run(cfg: GradCamConfig) -> list[Path]:
    """Write the maps; returns the files written (per variant, then the side-by-side image)."""
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    if (cfg.question is None) != (cfg.answer is None):
        raise DataError("--question and --answer go together (the prompt is 'question: Q answer: A')")
    if cfg.weights is not None and len(cfg.weights) != len(cfg.encoders):
        raise DataError(f"--weights gives {len(cfg.weights)} files for {len(cfg.encoders)} --encoders; give one each")
    text = cfg.text if cfg.question is None else f"question: {cfg.question} answer: {cfg.answer}"
    image = read_image(cfg.image)
    written, panels = [], []
    for k, name in enumerate(cfg.encoders):
        torch.manual_seed(0)
        clip = load_clip(name, cfg.weights[k] if cfg.weights else None, cfg.device)
        heat, shown = gradcam_map(clip, image, text)
        overlay = show_cam_on_image(shown.astype(np.float32), heat, use_rgb=True)  # [S, S, 3] uint8
        target = Path(cfg.out) / f"{Path(cfg.image).stem}_{clip.encoder.name}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(overlay).save(tmp, format="PNG")
        written.append(target)
        panels.append(Image.fromarray(overlay).resize((224, 224)))
    strip = Image.new("RGB", (224 * len(panels), 224))
    for k, panel in enumerate(panels):
        strip.paste(panel, (224 * k, 0))
    target = Path(cfg.out) / f"{Path(cfg.image).stem}_gradcam.png"
    with atomic_path(target) as tmp:
        strip.save(tmp, format="PNG")
    return written + [target]


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(GradCamConfig, argv, prog="python -m features.gradcam", description=__doc__.splitlines()[0],
                       choices={"encoders": ENCODERS})
    files = run(cfg)
    print("Grad-CAM maps: " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
