"""CLIP encoder factory: shapes of every variant, weights round trips, image handling, offline failure."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from envs.datadir import DataError
from features.encoders import ENCODERS, load_encoder, list_encoders, read_state_dict

# (pooled dim, grid shape) at random init; RN101's CLIP embedding is 512 (OpenAI's config), not 1024
EXPECTED = {
    "RN50": (1024, (2048, 7, 7)),
    "RN101": (512, (2048, 7, 7)),
    "RN50x4": (640, (2560, 9, 9)),
    "ViT-B-32": (512, (768, 7, 7)),
    "ViT-B-16": (512, (768, 14, 14)),
}


@pytest.fixture(scope="module")
def rn50():
    torch.manual_seed(0)
    return load_encoder("RN50")


def _views(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, 480, 640, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "name", [n if n in ("RN50", "ViT-B-32") else pytest.param(n, marks=pytest.mark.slow) for n in ENCODERS]
)
def test_variant_shapes(name):
    encoder = load_encoder(name)
    pooled, grid = encoder.encode(_views(1))
    dim, grid_shape = EXPECTED[name]
    assert pooled.shape == (1, dim) and encoder.embed_dim == dim
    assert grid.shape == (1, *grid_shape) and encoder.grid_dim == grid_shape[0]
    assert torch.isfinite(pooled).all() and torch.isfinite(grid).all()


def test_pooled_is_the_models_own_forward(rn50):
    """encode() splits the forward pass; its pooled output must equal the tower's plain forward."""
    images = _views(2)
    x = rn50.preprocess(images)
    with torch.no_grad():
        assert torch.allclose(rn50.pooled(images), rn50.visual(x), atol=1e-5)


def test_vit_pooled_is_projected_cls():
    encoder = load_encoder("ViT-B-32")
    x = encoder.preprocess(_views(1))
    visual = encoder.visual
    with torch.no_grad():
        tokens = visual.transformer(visual._embeds(x))
        cls = visual.ln_post(tokens[:, 0]) @ visual.proj
    assert torch.allclose(encoder.pooled(_views(1)), cls, atol=1e-4)


@pytest.mark.parametrize("kind", ["state_dict", "checkpoint", "safetensors", "full_clip"])
def test_local_weights_round_trip(rn50, tmp_path, kind):
    images = _views(1, seed=3)
    expected = rn50.pooled(images)
    state = {k: v.clone() for k, v in rn50.visual.state_dict().items()}
    path = tmp_path / "w.pt"
    if kind == "state_dict":
        torch.save(state, path)
    elif kind == "checkpoint":
        torch.save({"epoch": 3, "state_dict": {f"module.visual.{k}": v for k, v in state.items()}}, path)
    elif kind == "full_clip":
        torch.save({**{f"visual.{k}": v for k, v in state.items()}, "logit_scale": torch.tensor(4.6)}, path)
    else:
        safetensors = pytest.importorskip("safetensors.torch")
        path = tmp_path / "w.safetensors"
        safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = load_encoder("RN50", weights=path)
    assert loaded.weights == str(path)
    assert torch.equal(loaded.pooled(images), expected)


def test_bad_weights_files_are_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_encoder("RN50", weights=tmp_path / "missing.pt")
    wrong = tmp_path / "vit.pt"
    torch.save({"visual.conv1.weight": torch.zeros(768, 3, 32, 32)}, wrong)
    with pytest.raises(DataError, match="does not fit RN50"):
        load_encoder("RN50", weights=wrong)
    partial = tmp_path / "partial.pt"
    torch.save({"attnpool.c_proj.bias": torch.zeros(1024)}, partial)
    with pytest.raises(DataError, match="lacks"):
        load_encoder("RN50", weights=partial)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="neither"):
        read_state_dict(junk)


def test_offline_tag_fails_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("features.encoders._tag_cached", lambda name, tag: False)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_encoder("RN50x4", weights="openai")
    assert time.perf_counter() - start < 1.0
    assert "local file" in str(info.value) and "--weights" in str(info.value)


def test_unknown_names_and_tags():
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("RN152")
    with pytest.raises(DataError, match="Tags"):
        load_encoder("RN50", weights="no_such_tag")
    assert "openai" in list_encoders()["RN50x4"]


def test_channel_order_and_crop(rn50):
    rgb = _views(1, seed=5)
    from dataclasses import replace

    bgr_model = replace(rn50, channel_order="bgr_as_rgb")
    # feeding BGR pixels "as RGB" is the same as swapping the channels of the RGB image
    assert torch.equal(bgr_model.preprocess(rgb), rn50.preprocess(rgb[..., ::-1].copy()))
    assert not torch.equal(bgr_model.preprocess(rgb), rn50.preprocess(rgb))
    # centre crop drops the left and right 80 columns of a 640x480 view; "none" keeps them
    edited = rgb.copy()
    edited[:, :, :60] = 0
    assert torch.equal(rn50.preprocess(edited), rn50.preprocess(rgb))
    squeeze = replace(rn50, crop="none")
    assert not torch.equal(squeeze.preprocess(edited), squeeze.preprocess(rgb))
    assert squeeze.preprocess(rgb).shape == (1, 3, 224, 224)


@pytest.mark.parametrize("crop", ["center", "none"])
def test_columns_read_are_all_that_preprocessing_reads(rn50, crop):
    from dataclasses import replace

    model = replace(rn50, crop=crop)
    first, end = model.columns_read(640, 480)
    rgb = _views(1, seed=3)
    outside = rgb.copy()
    outside[:, :, :first] = 0
    outside[:, :, end:] = 255
    assert torch.equal(model.preprocess(outside), model.preprocess(rgb))
    if crop == "none":
        assert (first, end) == (0, 640)
        return
    assert 60 < first and end < 580  # the centre crop reads about the middle 480 columns, not the sides
    for column in (first + 2, end - 3):  # the range is tight to the kernel's reach (one column of margin)
        inside = rgb.copy()
        inside[:, :, column] = 255 - inside[:, :, column]
        assert not torch.equal(model.preprocess(inside), model.preprocess(rgb))


def test_image_layouts_agree(rn50):
    hwc = _views(2, seed=7)
    chw_uint8 = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    as_list = [hwc[0], torch.from_numpy(hwc[1]).permute(2, 0, 1)]
    reference = rn50.preprocess(hwc)
    assert torch.equal(rn50.preprocess(chw_uint8), reference)
    assert torch.equal(rn50.preprocess(as_list), reference)
    float_input = rn50.preprocess(chw_uint8.float() / 255)
    # the float path resizes in float (bicubic overshoot is clipped later, not at 0/255): close, not equal
    assert (float_input - reference).abs().mean() < 0.01
    with pytest.raises(ValueError, match="HWC"):
        rn50.preprocess(hwc.astype(np.float32))
