"""Perspective views from Matterport skybox cube faces, rendered in torch exactly as MatterSim's OpenGL does.

How MatterSim draws a view (peteanderson80/Matterport3DSimulator, ``src/lib/NavGraph.cpp`` and
``MatterSim.cpp::renderScene``, current master), restated as the ray geometry used here:

* Cube map: face images go to OpenGL cube targets ``+X: 2, -X: 4, +Y: 0, -Y: 5, +Z: 1, -Z: 3`` (skybox file
  index), each image's first row loaded as texture row ``t = 0``. The small merged file
  ``{vp}_skybox_small.jpg`` is the six faces side by side in index order 0..5 (``scripts/downsize_skybox.py``).
* Model matrix: the viewpoint's pose rotation ``R`` (the connectivity ``pose``, row-major, translation
  dropped); View: ``rotX(-pi/2 + elevation) @ rotZ(pi + heading)``; the framebuffer is read back with
  ``glReadPixels`` (bottom row first) without a flip; the vertex shader samples the cube at the model-space
  vertex. Working the matrices through, the pixel in row ``r`` (top first), column ``c`` of the returned image
  looks along the world ray ``w = f + x * tan(hfov/2) * right + y * tan(vfov/2) * up`` with
  ``x = (c + 0.5) / W * 2 - 1``, ``y = 1 - (r + 0.5) / H * 2``, ``f = (sin h cos e, cos h cos e, sin e)``
  (heading clockwise from +y, z up: the simulator's own convention), ``right = (cos h, -sin h, 0)``,
  ``up = (-sin h sin e, -cos h sin e, cos e)``, and samples the cube map at ``d = -R^T w``.
  With Matterport poses (camera x right, y down, z forward) this puts face 3 straight ahead of the camera
  the pose describes, face 0 above, face 5 below and face 4 to its right, upright and unmirrored.
  ``tests/test_render.py`` checks this closed form against a transcription of the GL matrix chain.
* Sampling: OpenGL's cube face selection by the major axis and its (sc, tc) table, ``GL_LINEAR`` without
  mipmaps, ``GL_CLAMP_TO_EDGE`` within each face. Here that is one ``grid_sample`` over the six faces stacked
  into a column, with coordinates clamped to each face's texel centres so no sample bleeds across faces.

Older MatterSim (before the "Images are mirrored" fix, issue #1) rotated the pose by 180 degrees about x and
flipped the read-back image; its views are mirror images of these. The current convention is implemented.

Images here are RGB (MatterSim itself returns BGR); :mod:`features.encoders` offers CLIP-ViL's BGR-as-RGB
handling where a released feature file must be matched.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from envs.datadir import data_error
from envs.kernel.grid import R2R_CAMERA, VIEW_ELEVATIONS, VIEW_HEADINGS

WIDTH, HEIGHT, VFOV = R2R_CAMERA  # the default camera of every function here

# GL cube target (+X, -X, +Y, -Y, +Z, -Z) -> Matterport skybox image index.
GL_TARGET_TO_SKYBOX = (2, 4, 0, 5, 1, 3)

# A pose for worlds without Matterport poses: camera x = world +x, y = world -z (down), z = world +y, so that
# face 3 is at heading 0, face 0 up and face 4 at heading 90 degrees. Used when ``pose_rotations`` is None.
LEVEL_POSE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def view_angles() -> tuple[torch.Tensor, torch.Tensor]:
    """Headings and elevations ``[36]`` (radians, float64) of MatterSim's discretized views, in view-index
    order (:mod:`envs.kernel.grid`)."""
    return torch.from_numpy(VIEW_HEADINGS.copy()), torch.from_numpy(VIEW_ELEVATIONS.copy())


def _skybox_paths(skybox_dir: Path, scan: str, viewpoint: str) -> tuple[list[Path], Path]:
    folder = Path(skybox_dir) / scan / "matterport_skybox_images"
    faces = [folder / f"{viewpoint}_skybox{i}_sami.jpg" for i in range(6)]
    return faces, folder / f"{viewpoint}_skybox_small.jpg"


def has_skybox(skybox_dir: str | os.PathLike, scan: str, viewpoint: str) -> bool:
    """Whether either skybox layout exists for this viewpoint. Some faces without the others (and without the
    merged file) is a broken download, a :class:`~envs.datadir.DataError` naming the missing faces."""
    faces, small = _skybox_paths(Path(skybox_dir), scan, viewpoint)
    if small.exists():
        return True
    present = [p.exists() for p in faces]
    if all(present):
        return True
    if any(present):
        missing = [p.name for p, there in zip(faces, present) if not there]
        raise data_error(faces[0].parent, f"viewpoint {viewpoint} has {sum(present)} of its 6 skybox faces "
                         f"({', '.join(missing)} missing)", "Download or extract that viewpoint's skybox again")
    return False


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB ``[H, W, 3]``; a file that does not decode (cut short, empty, not an image) is
    a :class:`~envs.datadir.DataError` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise data_error(path, f"cannot be decoded as an image ({error})", "Re-download or regenerate it") from None
    except OSError as error:
        if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise data_error(path, f"cannot be decoded as an image ({error})", "Re-download or regenerate it") from None


def _decode(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1)  # [3, H, W] uint8


def load_skybox(skybox_dir: str | os.PathLike, scan: str, viewpoint: str) -> torch.Tensor:
    """Load one viewpoint's cube faces as uint8 RGB ``[6, 3, S, S]`` in skybox index order (0 up ... 5 down).

    Reads the raw Matterport layout ``{scan}/matterport_skybox_images/{vp}_skybox{0..5}_sami.jpg`` when all
    six exist (what the MatterSim bundled with EnvDrop / CLIP-ViL read, so the published features come from
    them), else MatterSim's merged ``{vp}_skybox_small.jpg`` (six faces side by side).
    """
    faces_paths, small = _skybox_paths(Path(skybox_dir), scan, viewpoint)
    if all(p.exists() for p in faces_paths):
        faces = [_decode(p) for p in faces_paths]
        for path, face in zip(faces_paths, faces):  # each an S x S square, S the first face's
            if face.shape[1:] != (faces[0].shape[1],) * 2:
                h, w = face.shape[1:]
                raise data_error(path, f"is {w}x{h}: the skybox faces of {viewpoint} are not equal squares (the first "
                                 f"is {faces[0].shape[2]}x{faces[0].shape[1]})",
                                 "Each _skybox{i}_sami.jpg must be an S x S image; download the skybox again")
        return torch.stack(faces)
    if small.exists():
        merged = _decode(small)
        size = merged.shape[1]
        if merged.shape[2] != 6 * size:
            raise data_error(small, f"is {merged.shape[2]}x{size}, expected six square faces side by side "
                             f"({6 * size}x{size})", "Regenerate it with MatterSim's scripts/downsize_skybox.py")
        return merged.reshape(3, size, 6, size).permute(2, 0, 1, 3).contiguous()
    raise data_error(faces_paths[0].parent, f"no skybox for viewpoint {viewpoint}",
                     f"Expected {faces_paths[0].name} .. {faces_paths[5].name} or {small.name} there")


def camera_rays(
    headings: torch.Tensor,
    elevations: torch.Tensor,
    width: int = WIDTH,
    height: int = HEIGHT,
    vfov: float = VFOV,
    cols: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """World ray (unnormalised) through each pixel centre of each view: ``[V, H, W, 3]`` float32.

    World frame as the simulator's: z up, heading clockwise from +y, elevation up positive. Row 0 is the
    image top, as MatterSim returns it. ``cols``/``rows`` (pixel indices, may be fractional or outside the
    image) replace the default ``arange(width)``/``arange(height)``.
    """
    h = torch.as_tensor(headings, dtype=torch.float64).reshape(-1, 1, 1)
    e = torch.as_tensor(elevations, dtype=torch.float64).reshape(-1, 1, 1)
    cols = torch.arange(width, dtype=torch.float64) if cols is None else cols.double()
    rows = torch.arange(height, dtype=torch.float64) if rows is None else rows.double()
    return _rays(h, e, rows.reshape(1, -1, 1), cols.reshape(1, 1, -1), width, height, vfov)  # [V, H, W, 3]


def _rays(h: torch.Tensor, e: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, width: int, height: int,
          vfov: float) -> torch.Tensor:
    """:func:`camera_rays` for broadcastable float64 headings, elevations, rows and columns: ``[..., 3]``."""
    tan_v = math.tan(vfov / 2)
    x = ((cols + 0.5) / width * 2 - 1) * tan_v * width / height
    y = (1 - (rows + 0.5) / height * 2) * tan_v
    sh, ch, se, ce = torch.sin(h), torch.cos(h), torch.sin(e), torch.cos(e)
    rays = torch.stack(torch.broadcast_tensors(
        sh * ce + x * ch - y * sh * se,
        ch * ce - x * sh - y * ch * se,
        se + y * ce + 0 * x,
    ), dim=-1)
    return rays.float()


VIEW_CHUNK = 4  # views rendered together on a CPU (see render_views)
COARSE_STEP = 8  # pixels between the lattice points where the cube face is chosen (see _sampling_grid)


@dataclass(frozen=True)
class _Plan:
    """Pose-independent precomputation for one camera, one column range and one set of (heading, elevation)."""

    angles: tuple[torch.Tensor, torch.Tensor]  # headings, elevations [V] (float64)
    camera: tuple[int, int, float]  # width, height, vfov
    coarse: torch.Tensor  # [V, h, w, 3] rays at every COARSE_STEP-th pixel of the whole image (the last past it)
    upsample: torch.Tensor  # [1, H, C, 2] where each rendered pixel lies in the lattice (grid_sample coordinates)
    step: int  # pixels between lattice points
    columns: tuple[int, int]  # the rendered columns (first, end)

    def rays(self, view: torch.Tensor | None = None, row: torch.Tensor | None = None,
             col: torch.Tensor | None = None) -> torch.Tensor:
        """Rays through pixel centres: of the pixels ``(view, row, col)`` ``[P, 3]``, else of all ``[V, H, C, 3]``."""
        headings, elevations = self.angles
        width, height, vfov = self.camera
        if view is None:
            return camera_rays(headings, elevations, width, height, vfov, cols=torch.arange(*self.columns))
        return _rays(headings[view], elevations[view], row.double(), col.double(), width, height, vfov)


@lru_cache(maxsize=64)
def _plan(angles: tuple[tuple[float, float], ...], width: int, height: int, vfov: float, step: int,
          columns: tuple[int, int]) -> _Plan:
    headings = torch.tensor([a[0] for a in angles], dtype=torch.float64)
    elevations = torch.tensor([a[1] for a in angles], dtype=torch.float64)
    w, h = -(-(width - 1) // step) + 1, -(-(height - 1) // step) + 1  # lattice reaching past the last pixel
    coarse = camera_rays(headings, elevations, width, height, vfov,
                         cols=torch.arange(w) * step, rows=torch.arange(h) * step)
    # the lattice spans the whole image whatever the columns, so a rendered pixel comes out the same either way
    col = torch.arange(*columns, dtype=torch.float64)
    row = torch.arange(height, dtype=torch.float64)
    upsample = torch.stack(torch.broadcast_tensors(col[None, :] / step / (w - 1) * 2 - 1,
                                                   row[:, None] / step / (h - 1) * 2 - 1), dim=-1)
    return _Plan((headings, elevations), (width, height, vfov), coarse, upsample[None].float(), step, columns)


# Per GL target (+X, -X, +Y, -Y, +Z, -Z): the direction component and sign giving sc and tc (the OpenGL
# spec's cube map table: +X (-z, -y), -X (z, -y), +Y (x, z), -Y (x, -z), +Z (x, -y), -Z (-x, -y)).
_SC_TC_COMPONENT = torch.tensor([[2, 1], [2, 1], [0, 2], [0, 2], [0, 1], [0, 1]])
_SC_TC_SIGN = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [1.0, -1.0], [-1.0, -1.0]])


def _cube_raw(directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenGL's cube lookup before the division: ``(sc, tc) [N, 2]``, the major component ``[N]`` and the
    skybox face index ``[N]``; the face texel is ``((sc, tc) / major + 1) * S / 2 - 0.5``."""
    flat = directions.reshape(-1, 3)
    major, axis = flat.abs().max(-1)  # [N]
    negative = flat.gather(1, axis[:, None]).squeeze(1) < 0
    target = axis * 2 + negative  # GL target 0..5
    device = directions.device
    sc_tc = flat.gather(1, _SC_TC_COMPONENT.to(device)[target]) * _SC_TC_SIGN.to(device, flat.dtype)[target]
    return sc_tc, major, torch.tensor(GL_TARGET_TO_SKYBOX, device=device)[target]


def cube_coordinates(directions: torch.Tensor, face_size: int) -> torch.Tensor:
    """Map cube-space directions ``[..., 3]`` to sample points in the stacked face column ``[..., 2]``.

    OpenGL's face selection (largest |component|) and per-face (sc, tc) table pick the face and the texel
    position; the result is ``(column, row)`` in pixels of a ``[6 * S, S]`` column with skybox face ``i`` at
    rows ``i*S .. (i+1)*S``, clamped to texel centres of that face (``GL_CLAMP_TO_EDGE``).
    """
    sc_tc, major, face = _cube_raw(directions)
    st = (sc_tc / major[:, None] + 1) * (0.5 * face_size) - 0.5
    st = st.clamp_(0, face_size - 1)
    st[:, 1] += face.to(st.dtype) * face_size
    return st.reshape(*directions.shape[:-1], 2)


def _sampling_grid(plan: _Plan, rotation: torch.Tensor, size: int, exact: bool = False) -> torch.Tensor:
    """``grid_sample`` coordinates ``[V, H, C, 2]`` into the stacked faces for one pose.

    Computing the cube lookup for every pixel costs several times the sampling itself on a CPU, so the face
    choice is made on a lattice every :data:`COARSE_STEP` pixels (8). Within one face both sample coordinates
    are ratios of linear functions of the pixel position (``u = a / m``, ``v = b / m`` with ``a``, ``b`` and
    the major component ``m`` linear), so the lattice stores ``a``, ``b`` and ``m``, which bilinear
    interpolation reproduces exactly, and each pixel does the two divisions. Cells whose corners lie on
    different faces or near a face edge (where clamping starts) are computed per pixel. A face's region of a
    view is convex, so a cell whose four corners share a face lies inside it. ``exact=True`` computes every
    pixel (the result agrees to float rounding).
    """
    views, (height, width) = plan.coarse.shape[0], plan.upsample.shape[1:3]
    device = rotation.device
    grid = torch.empty(views, height, width, 2, device=device)
    scale = torch.tensor([2.0 / (size - 1), 2.0 / (6 * size - 1)], device=device)
    if exact:
        grid.copy_(cube_coordinates(-(plan.rays().to(device) @ rotation), size) * scale - 1)
        return grid
    coarse = plan.coarse.to(device)
    lattice = coarse.shape[1:3]
    sc_tc, major, face = _cube_raw(-(coarse @ rotation))  # [V*h*w, 2], [V*h*w], [V*h*w]
    ratio = sc_tc / major[:, None]
    near_edge = (ratio.abs() > 1 - 2 / size).any(-1).reshape(views, *lattice)  # within a texel of the edge
    face_grid = face.reshape(views, *lattice)
    exact_cell = torch.zeros(views, lattice[0] - 1, lattice[1] - 1, dtype=torch.bool, device=device)
    for rs, cs in ((slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None)),
                   (slice(1, None), slice(None, -1)), (slice(1, None), slice(1, None))):
        exact_cell |= near_edge[:, rs, cs] | (face_grid[:, rs, cs] != face_grid[:, :-1, :-1])
    # normalised coordinates: u = sc/m * S/(S-1); v = (tc * S/(6S-1) + o m) / m with the face's row offset
    # o = (2 S face + S - 1)/(6S-1) - 1, constant within a face, so o m is linear there as well
    offset = (2 * size * face + size - 1).to(major.dtype) / (6 * size - 1) - 1
    channels = torch.stack([
        sc_tc[:, 0] * (size / (size - 1)),
        torch.addcmul(sc_tc[:, 1] * (size / (6 * size - 1)), offset, major),
        major,
    ], dim=0).reshape(3, views, *lattice).transpose(0, 1)  # [V, 3, h, w]
    up = F.grid_sample(channels, plan.upsample.to(device).expand(views, -1, -1, -1), mode="bilinear",
                       align_corners=True)  # [V, 3, H, C]
    torch.div(up[:, 0], up[:, 2], out=grid[..., 0])
    torch.div(up[:, 1], up[:, 2], out=grid[..., 1])
    # pixels of the exact cells, edges included (a pixel on a cell edge may belong to either neighbour)
    view, cell_row, cell_col = exact_cell.nonzero(as_tuple=True)  # [M] each
    offsets = torch.arange(plan.step + 1, device=device)
    first, end = plan.columns
    rows = (cell_row * plan.step)[:, None, None] + offsets[None, :, None]  # [M, k+1, 1]
    cols = (cell_col * plan.step)[:, None, None] + offsets[None, None, :]  # [M, 1, k+1]
    inside = (rows < height) & (cols >= first) & (cols < end)  # [M, k+1, k+1]
    rows, cols = rows.expand_as(inside)[inside], cols.expand_as(inside)[inside]  # [P] each
    view = view[:, None, None].expand_as(inside)[inside]
    rays = plan.rays(view.cpu(), rows.cpu(), cols.cpu()).to(device)  # [P, 3]
    grid.view(views, height * width, 2)[view, rows * width + cols - first] = \
        cube_coordinates(-(rays @ rotation), size) * scale - 1
    return grid


def render_views(
    faces: torch.Tensor,
    headings: torch.Tensor,
    elevations: torch.Tensor,
    pose_rotations: torch.Tensor | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    vfov: float = VFOV,
    exact: bool = False,
    columns: tuple[int, int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render perspective views of skyboxes: ``[B, V, 3, height, width]``.

    Args:
        faces: ``[B, 6, 3, S, S]`` cube faces in skybox index order, uint8 (output is rounded uint8) or float.
        headings, elevations: ``[B, V]`` or ``[V]`` (shared by the batch) camera angles in radians.
        pose_rotations: ``[B, 3, 3]`` each viewpoint's pose rotation (``NavGraph.poses[:, :3, :3]``), or None
            for :data:`LEVEL_POSE` (face 3 at heading 0).
        width, height, vfov: the camera (MatterSim's R2R camera by default: 640x480, 60 degrees vertical).
        exact: compute the cube lookup at every pixel instead of interpolating it (see :func:`_sampling_grid`).
        columns: ``(first, end)``: render only these pixel columns and leave the others black, for a consumer
            that never reads them (a centre crop: :meth:`features.encoders.Encoder.columns_read`).
        out: a tensor of the result's shape, dtype and device to write into (a loop over viewpoints that
            reuses one saves the page faults of a fresh 33 MB image batch per call).

    Ray directions per (heading, elevation) set are computed once and cached; each call then rotates them by
    the poses and samples the views a few at a time (:data:`VIEW_CHUNK` on a CPU, all at once elsewhere),
    each chunk one ``grid_sample`` whose batch is the views, so CPU threads share it.
    """
    if faces.ndim != 5 or faces.shape[1] != 6 or faces.shape[3] != faces.shape[4]:
        raise ValueError(f"faces must be [B, 6, 3, S, S], got {tuple(faces.shape)}")
    batch, channels, size, device = faces.shape[0], faces.shape[2], faces.shape[-1], faces.device
    headings = torch.as_tensor(headings, dtype=torch.float64)
    elevations = torch.as_tensor(elevations, dtype=torch.float64)
    if headings.ndim == 1:
        headings, elevations = headings.expand(batch, -1), elevations.expand(batch, -1)
    if headings.shape != elevations.shape or headings.shape[0] != batch:
        raise ValueError(f"headings {tuple(headings.shape)} and elevations {tuple(elevations.shape)} must be [B, V]")
    first, end = (0, width) if columns is None else (int(columns[0]), int(columns[1]))
    if not 0 <= first < end <= width:
        raise ValueError(f"columns must satisfy 0 <= first < end <= width ({width}), got {columns}")
    views = headings.shape[1]
    if pose_rotations is None:
        pose_rotations = LEVEL_POSE.expand(batch, 3, 3)
    rotations = torch.as_tensor(pose_rotations, dtype=torch.float32, device=device).reshape(batch, 3, 3)

    # the faces stacked into one column [B, 3, 6S, S]; uint8 faces become texel + 0.5, so that the
    # truncating copy into uint8 below rounds (bilinear weights are non-negative and sum to one: samples stay
    # within [0.5, 255.5] and need no clamp)
    by_channel = faces.permute(0, 2, 1, 3, 4)  # [B, 3, 6, S, S]
    if faces.is_floating_point():
        source = by_channel.reshape(batch, channels, 6 * size, size)
    else:
        source = _scratch((batch, channels, 6 * size, size), device)
        source.view(by_channel.shape).copy_(by_channel)
        source.add_(0.5)
    shape = (batch, views, channels, height, width)
    if out is None:
        out = torch.empty(shape, dtype=faces.dtype, device=device)
    elif out.shape != shape or out.dtype != faces.dtype or out.device != device:
        raise ValueError(f"out must be {faces.dtype} {list(shape)} on {device}, got {out.dtype} "
                         f"{list(out.shape)} on {out.device}")
    out[..., :first] = 0
    out[..., end:] = 0
    chunk = VIEW_CHUNK if device.type == "cpu" else views
    for b in range(batch):
        angles = tuple(zip(headings[b].tolist(), elevations[b].tolist()))
        # a few views at a time: the temporaries stay small enough for the allocator to reuse (fresh
        # full-panorama buffers cost more in page faults than the arithmetic); views are the grid_sample
        # batch, over which CPU kernels parallelise
        for v in range(0, views, chunk):
            plan = _plan(angles[v : v + chunk], width, height, float(vfov), COARSE_STEP, (first, end))
            grid = _sampling_grid(plan, rotations[b], size, exact)  # [v, H, C, 2]
            sampled = F.grid_sample(source[b : b + 1].expand(grid.shape[0], -1, -1, -1), grid.to(source.dtype),
                                    mode="bilinear", padding_mode="border", align_corners=True)  # [v, 3, H, C]
            out[b, v : v + chunk, ..., first:end] = sampled
    return out


def render_panorama(
    faces: torch.Tensor,
    pose_rotation: torch.Tensor | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    vfov: float = VFOV,
    columns: tuple[int, int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The 36 discretized views of one skybox ``[6, 3, S, S]`` in view-index order: ``[36, 3, H, W]`` (written
    into ``out`` when given)."""
    headings, elevations = view_angles()
    rotations = None if pose_rotation is None else torch.as_tensor(pose_rotation).reshape(1, 3, 3)
    return render_views(faces[None], headings, elevations, rotations, width, height, vfov, columns=columns,
                        out=None if out is None else out[None])[0]


_SCRATCH = threading.local()


def _scratch(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float32 buffer of ``shape`` kept per thread and reused by the next call of the same shape: writing a
    fresh 75 MB buffer (six 1024-px faces) costs more in page faults than the conversion into it."""
    key = (shape, str(device))
    if getattr(_SCRATCH, "key", None) != key:
        _SCRATCH.key, _SCRATCH.buffer = key, torch.empty(shape, device=device)
    return _SCRATCH.buffer
