"""Skybox renderer: MatterSim's camera geometry, cube-face conventions, both file layouts, real views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from envs.datadir import DataError
from envs.kernel.skybox import (
    LEVEL_POSE,
    camera_rays,
    cube_coordinates,
    load_skybox,
    render_panorama,
    render_views,
    view_angles,
)

SIZE = 32  # face side of the synthetic skyboxes
FACE_COLOURS = torch.tensor([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [0, 250, 250], [250, 0, 250]])


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _yaw_pose(yaw: float) -> torch.Tensor:
    """A Matterport-style pose (camera y down, optical axis z) looking level at heading ``yaw``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return torch.tensor([[c, 0.0, s], [-s, 0.0, c], [0.0, -1.0, 0.0]])


def _coloured_faces() -> torch.Tensor:
    return FACE_COLOURS[:, :, None, None].expand(6, 3, SIZE, SIZE).to(torch.uint8).clone()


def _paint(faces: torch.Tensor, pose: torch.Tensor, world_dir, colour=(255, 255, 255), radius: int = 1) -> None:
    """Paint a marker on the face texel that MatterSim shows at world direction ``world_dir``."""
    cube = -(torch.tensor(world_dir, dtype=torch.float32) @ pose)  # d = -R^T w
    col, row = cube_coordinates(cube[None], SIZE)[0].round().long().tolist()
    face, row = divmod(row, SIZE)
    faces[face, :, max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1] = torch.tensor(
        colour, dtype=torch.uint8
    )[:, None, None]


def _direction(heading: float, elevation: float = 0.0) -> list[float]:
    return [math.sin(heading) * math.cos(elevation), math.cos(heading) * math.cos(elevation), math.sin(elevation)]


def _marker_centroid(image: torch.Tensor) -> tuple[float, float] | None:
    """(row, col) centroid of the white pixels of a [3, H, W] uint8 image."""
    white = (image.int().min(0).values > 200).nonzero().float()
    return None if len(white) == 0 else tuple(white.mean(0).tolist())


def test_rays_match_mattersim_gl_matrix_chain():
    """Transcribe renderScene: View = rotX(-pi/2 + e) rotZ(pi + h), Model = R, glReadPixels rows bottom-up."""
    width, height, vfov = 40, 30, math.radians(60)
    rng = np.random.default_rng(0)
    pose, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    heading, elevation = 2.2, -0.4
    rays = camera_rays(torch.tensor([heading]), torch.tensor([elevation]), width, height, vfov)[0].double().numpy()
    tan_v = math.tan(vfov / 2)
    for row in (0, 7, height - 1):
        for col in (0, 21, width - 1):
            # row r of the returned image is GL window row r (glReadPixels starts at the bottom, no flip)
            eye = np.array([((col + 0.5) / width * 2 - 1) * tan_v * width / height, ((row + 0.5) / height * 2 - 1) * tan_v, -1])
            view = _rot("x", -math.pi / 2 + elevation) @ _rot("z", math.pi + heading)
            cube_gl = pose.T @ view.T @ eye  # the model-space vertex the fragment samples the cube at
            cube_ours = -pose.T @ rays[row, col]
            np.testing.assert_allclose(cube_ours / np.linalg.norm(cube_ours), cube_gl / np.linalg.norm(cube_gl), atol=1e-6)


def test_view_order_is_mattersims():
    headings, elevations = view_angles()
    assert headings[13].item() == pytest.approx(math.radians(30))
    assert elevations[0].item() == pytest.approx(-math.radians(30)) and elevations[35].item() == pytest.approx(math.radians(30))
    assert headings[35].item() == pytest.approx(math.radians(330))


@pytest.mark.parametrize("yaw", [0.0, 1.0])
def test_marker_straight_ahead_is_at_the_image_centre(yaw):
    pose = _yaw_pose(yaw)
    faces = _coloured_faces()
    _paint(faces, pose, _direction(0.7))
    out = render_views(faces[None], torch.tensor([0.7]), torch.tensor([0.0]), pose[None], width=64, height=48)
    row, col = _marker_centroid(out[0, 0])
    assert abs(row - 23.5) < 1.5 and abs(col - 31.5) < 1.5


def test_marker_30_degrees_right_moves_to_the_next_view():
    pose = _yaw_pose(0.3)
    faces = _coloured_faces()
    _paint(faces, pose, _direction(math.radians(30)))
    panorama = render_panorama(faces, pose, width=64, height=48)  # [36, 3, H, W]
    row, col = _marker_centroid(panorama[13])  # heading 30, level
    assert abs(row - 23.5) < 1.5 and abs(col - 31.5) < 1.5
    # in view 12 (heading 0) it sits right of centre where the pinhole model puts it
    row, col = _marker_centroid(panorama[12])
    tan_half_h = math.tan(math.radians(30)) * 64 / 48
    expected_col = (1 + math.tan(math.radians(30)) / tan_half_h) / 2 * 64 - 0.5
    assert abs(col - expected_col) < 2 and abs(row - 23.5) < 2  # texel-sized marker, magnified at the edge
    assert _marker_centroid(panorama[14]) is None or _marker_centroid(panorama[14])[1] < 31.5  # and left in view 14


def test_faces_around_up_and_down_follow_the_pose():
    pose = LEVEL_POSE  # face 3 at heading 0, 1-4 clockwise
    faces = _coloured_faces()
    panorama = render_panorama(faces, pose, width=32, height=24).int()
    centre = panorama[:, :, 12, 16]  # [36, 3]
    for view, face in {12: 3, 15: 4, 18: 1, 21: 2}.items():  # headings 0, 90, 180, 270 degrees
        assert centre[view].tolist() == FACE_COLOURS[face].tolist()
    # looking up 30 degrees, the top row (60 degrees up) is on face 0; looking down, the bottom row on face 5
    assert panorama[24, :, 0, 16].tolist() == FACE_COLOURS[0].tolist()
    assert panorama[0, :, -1, 16].tolist() == FACE_COLOURS[5].tolist()
    assert panorama[12, :, 0, 16].tolist() == FACE_COLOURS[3].tolist()


def test_face_images_are_upright_and_unmirrored():
    """A mark in the upper-left of the front face (3) shows upper-left in the view that faces it."""
    faces = _coloured_faces()
    faces[3, :, 4:8, 4:8] = 255  # upper-left of skybox image 3
    out = render_views(faces[None], torch.tensor([0.0]), torch.tensor([0.0]), LEVEL_POSE[None], width=64, height=64,
                       vfov=math.radians(90))
    row, col = _marker_centroid(out[0, 0])
    assert row < 16 and col < 16


def test_batch_pose_and_dtype_handling():
    torch.manual_seed(0)
    faces = torch.randint(0, 256, (2, 6, 3, SIZE, SIZE), dtype=torch.uint8)
    poses = torch.stack([_yaw_pose(0.2), _yaw_pose(2.0)])
    headings = torch.tensor([[0.0, 1.0], [0.5, 3.0]])
    elevations = torch.tensor([[0.0, 0.3], [-0.5, 0.0]])
    both = render_views(faces, headings, elevations, poses, width=20, height=16)
    assert both.shape == (2, 2, 3, 16, 20) and both.dtype == torch.uint8
    second = render_views(faces[1:], headings[1:], elevations[1:], poses[1:], width=20, height=16)
    assert torch.equal(both[1], second[0])
    as_float = render_views(faces.float(), headings, elevations, poses, width=20, height=16)
    assert (as_float - both.float()).abs().max() <= 0.5 + 1e-4
    with pytest.raises(ValueError, match="faces"):
        render_views(faces[0], headings, elevations)


def test_both_skybox_layouts_load_the_same(tmp_path):
    torch.manual_seed(1)
    faces = torch.randint(0, 256, (6, 3, SIZE, SIZE), dtype=torch.uint8)
    folder = tmp_path / "raw" / "scanA" / "matterport_skybox_images"
    folder.mkdir(parents=True)
    for i in range(6):  # PNG bytes under the .jpg name: lossless, and the loader decodes by content
        Image.fromarray(faces[i].permute(1, 2, 0).numpy()).save(folder / f"vp1_skybox{i}_sami.jpg", format="PNG")
    small = tmp_path / "small" / "scanA" / "matterport_skybox_images"
    small.mkdir(parents=True)
    merged = torch.cat(list(faces), dim=2).permute(1, 2, 0).numpy()  # six faces side by side
    Image.fromarray(merged).save(small / "vp1_skybox_small.jpg", format="PNG")
    assert torch.equal(load_skybox(tmp_path / "raw", "scanA", "vp1"), faces)
    assert torch.equal(load_skybox(tmp_path / "small", "scanA", "vp1"), faces)
    with pytest.raises(DataError, match="no skybox for viewpoint vp2"):
        load_skybox(tmp_path / "raw", "scanA", "vp2")


def _warp_error(view_a: torch.Tensor, view_b: torch.Tensor, angles_a, angles_b) -> float:
    """Mean |difference| where view B's pixels re-project into view A under the pinhole camera geometry."""
    _, height, width = view_b.shape
    rays = camera_rays(torch.tensor([angles_b[0]]), torch.tensor([angles_b[1]]), width, height)[0]  # [H, W, 3]
    h, e = angles_a
    forward = torch.tensor(_direction(h, e))
    right = torch.tensor([math.cos(h), -math.sin(h), 0.0])
    up = torch.linalg.cross(right, forward)
    tan_v = math.tan(math.radians(30))
    depth = rays @ forward
    x = (rays @ right) / depth / (tan_v * width / height)
    y = -(rays @ up) / depth / tan_v  # grid y points down
    valid = (depth > 0) & (x.abs() < 0.98) & (y.abs() < 0.98)
    warped = F.grid_sample(view_a[None].float(), torch.stack([x, y], -1)[None], align_corners=False)[0]
    return ((warped - view_b.float()).abs().mean(0))[valid].mean().item()


def test_real_views_are_consistent_with_the_camera_geometry(shared_data):
    """EnvDrop's 36 real views (rendered by MatterSim from skyboxes) overlap where this geometry says."""
    folder = shared_data / "mp3d_rendered_views" / "envdrop_semantic_views" / "17DRP5sb8fy"
    folder = folder / "10c252c90fa24ef3b698c6f54d984c5c_rgb"
    views = {i: torch.from_numpy(np.array(Image.open(folder / f"{i}.jpg").convert("RGB"))).permute(2, 0, 1)
             for i in (0, 12, 13, 24)}
    assert views[12].shape == (3, 480, 640)
    step, up = math.radians(30), math.radians(30)
    right_turn = _warp_error(views[12], views[13], (0.0, 0.0), (step, 0.0))
    mirrored = _warp_error(views[12], views[13], (0.0, 0.0), (-step, 0.0))
    look_up = _warp_error(views[12], views[24], (0.0, 0.0), (0.0, up))
    look_down = _warp_error(views[12], views[24], (0.0, 0.0), (0.0, -up))
    down = _warp_error(views[12], views[0], (0.0, 0.0), (0.0, -up))
    # measured: about 2 grey levels (JPEG noise) against 56-78 for the wrong sense
    assert right_turn < 5 and right_turn < mirrored / 5, (right_turn, mirrored)
    assert look_up < 5 and look_up < look_down / 5, (look_up, look_down)
    assert down < 5


def test_interpolated_lookup_matches_the_per_pixel_one():
    """The lattice-interpolated cube lookup agrees with the per-pixel one to float rounding."""
    torch.manual_seed(0)
    faces = F.interpolate(torch.rand(1, 18, 8, 8) * 255, size=(128, 128), mode="bilinear").round()
    faces = faces.to(torch.uint8).reshape(1, 6, 3, 128, 128)
    headings, elevations = view_angles()
    pose, _ = torch.linalg.qr(torch.randn(3, 3))
    fast = render_views(faces, headings[::5], elevations[::5], pose[None], width=160, height=120)
    exact = render_views(faces, headings[::5], elevations[::5], pose[None], width=160, height=120, exact=True)
    diff = (fast.int() - exact.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.002


def test_rendering_a_column_range_gives_those_columns_of_the_whole_view():
    """What features.extract relies on: the columns it renders are the whole view's, bit for bit."""
    torch.manual_seed(1)
    faces = torch.randint(0, 256, (6, 3, 96, 96), dtype=torch.uint8)
    pose, _ = torch.linalg.qr(torch.randn(3, 3))
    whole = render_panorama(faces, pose, width=160, height=120)
    part = render_panorama(faces, pose, width=160, height=120, columns=(19, 141))
    assert torch.equal(part[..., 19:141], whole[..., 19:141])
    assert part[..., :19].eq(0).all() and part[..., 141:].eq(0).all()
    with pytest.raises(ValueError, match="columns"):
        render_panorama(faces, pose, width=160, height=120, columns=(0, 161))


def test_agrees_with_the_synthetic_worlds_skybox_writer():
    """envs.world paints texel (face, row, col) with what lies along its face_directions; rendering a skybox
    whose texels hold their own directions must give back each pixel's camera ray."""
    world_render = pytest.importorskip("envs.world.raycast")
    pose = _yaw_pose(0.8).numpy()
    directions = torch.from_numpy(world_render.face_directions(64, pose)).permute(0, 3, 1, 2)  # [6, 3, S, S]
    headings, elevations = torch.tensor([0.0, 2.0, 4.0]), torch.tensor([0.0, 0.5, -0.5])
    seen = render_views(directions[None].float(), headings, elevations, torch.from_numpy(pose)[None].float(),
                        width=40, height=30)[0]  # [V, 3, H, W]
    rays = camera_rays(headings, elevations, 40, 30).permute(0, 3, 1, 2)  # [V, 3, H, W]
    cosine = F.cosine_similarity(seen, rays, dim=1)
    assert cosine.min() > 0.999
