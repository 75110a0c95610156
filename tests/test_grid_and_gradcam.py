"""Grid features of images (``features.extract --grid``: layout, resume, errors) and the Grad-CAM command on
the real VQA sample image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from envs.datadir import DataError
from features.encoders import load_encoder
from features.extract import main as extract_main
from features.gradcam import main as gradcam_main
from features.grid import GridFeatures, image_key, list_images, read_image


def _images(folder, n: int, size: int = 40) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)).save(folder / f"COCO_x_{i + 1:012d}.jpg")


def test_grid_extraction_writes_resumes_and_matches_the_encoder(tmp_path, capsys):
    _images(tmp_path / "images", 3)
    out = tmp_path / "grid.h5"
    args = ["--grid", "--images", str(tmp_path / "images"), "--out", str(out), "--encoder", "RN50", "--device", "cpu",
            "--batch-size", "2", "--dtype", "float16", "--quiet"]
    assert extract_main(args) == 0
    assert "3 images written, 0 already done" in capsys.readouterr().out
    with GridFeatures(out) as grid:
        assert len(grid) == 3 and "2" in grid and grid.cells == 49 and grid.dim == 2048
        assert grid.attrs["encoder"] == "RN50" and grid.attrs["grid_h"] == 7 and grid.attrs["weights"] == "random"
        stored = grid["2"]
    torch.manual_seed(0)  # the command's seed for random init
    expected = load_encoder("RN50").grid(read_image(tmp_path / "images" / "COCO_x_000000000002.jpg"))
    expected = expected.flatten(2).transpose(1, 2)[0].numpy()
    assert np.allclose(stored, expected, atol=2e-3 * np.abs(expected).max())
    assert extract_main(args) == 0
    assert "0 images written, 3 already done" in capsys.readouterr().out
    assert extract_main(["--grid", "--out", str(tmp_path / "x.h5")]) == 2  # a DataError: the input, not a bug
    assert "Pass --images DIR" in capsys.readouterr().err


def test_image_ids_and_bad_images(tmp_path):
    assert image_key("COCO_train2014_000000458752.jpg") == "458752" and image_key("n12345.png") == "12345"
    assert image_key("kitchen.png") == "kitchen"
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg: cannot be decoded"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(DataError, match="image not found"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .jpg/.png images"):
        list_images(tmp_path / "empty")


def test_gradcam_saves_a_map_per_variant(shared_data, tmp_path, capsys):
    image = shared_data / "vqa_v2_sample" / "images" / "COCO_train2014_000000458752.jpg"
    assert gradcam_main(["--image", str(image), "--out", str(tmp_path), "--encoders", "RN50", "ViT-B-32",
                         "--question", "What color is the players shirt?", "--answer", "orange"]) == 0
    for name in ("RN50", "ViT-B-32"):
        with Image.open(tmp_path / f"COCO_train2014_000000458752_{name}.png") as saved:
            assert saved.size == (224, 224) and np.asarray(saved).std() > 5
    with Image.open(tmp_path / "COCO_train2014_000000458752_gradcam.png") as strip:
        assert strip.size == (448, 224)
    assert gradcam_main(["--image", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    assert "image not found" in capsys.readouterr().err


def test_text_embeddings_equal_open_clips():
    """load_clip's encode_text runs the causal text tower on the batch's real length: same as open_clip's."""
    from features.encoders import load_clip

    torch.manual_seed(0)
    clip = load_clip("RN50")
    texts = ["question: What color is the sofa? answer: red", "a photo", "question: How many? answer: 2"]
    with torch.inference_mode():
        full = clip.model.encode_text(clip.tokenizer(texts)).float()
    assert torch.allclose(clip.encode_text(texts), full, atol=1e-4 * full.abs().max().item())
