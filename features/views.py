"""Folders of pre-rendered views: ``{views_dir}/{scan}/{viewpoint}_rgb/{0..35}.jpg`` (EnvDrop's
``semantic_views`` layout) or ``{views_dir}/{scan}/{viewpoint}/{0..35}.jpg|png``, one image per discretized
view in MatterSim's view order. Extraction encodes them; the replay shows them."""

from __future__ import annotations

from pathlib import Path


from envs.datadir import data_error
from envs.kernel.grid import VIEW_COUNT


def view_folder(views_dir: Path, scan: str, viewpoint: str) -> Path | None:
    """The folder holding a viewpoint's views, or None."""
    for folder in (Path(views_dir) / scan / f"{viewpoint}_rgb", Path(views_dir) / scan / viewpoint):
        if folder.is_dir():
            return folder
    return None


def view_file(folder: Path, ix: int) -> Path | None:
    """View ``ix``'s image in a viewpoint's folder (``.jpg`` or ``.png``), or None."""
    return next((p for p in (folder / f"{ix}.jpg", folder / f"{ix}.png") if p.exists()), None)


def read_views(folder: Path):
    """The 36 view images of one viewpoint as a uint8 RGB tensor ``[36, 3, H, W]``."""
    import torch

    from envs.kernel.skybox import read_rgb  # torch: only when reading views

    views = []
    for i in range(VIEW_COUNT):
        path = view_file(folder, i)
        if path is None:
            raise data_error(folder, f"view {i} missing", "Each viewpoint folder needs images 0..35 (.jpg or .png)")
        views.append(torch.from_numpy(read_rgb(path)).permute(2, 0, 1))
    if len({v.shape for v in views}) != 1:
        raise data_error(folder, "view images differ in size", "Render all 36 views at the same size")
    return torch.stack(views)
