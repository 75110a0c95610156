"""Vectorised ray casting of a world house: what a ray from a viewpoint hits, and the skybox cube faces.

A ray starts in its viewpoint's room and is tested against that room's walls, floor, ceiling and objects
(axis-aligned boxes). If it meets a wall inside a door opening it carries on into the next room. Each
hit returns a surface label (one per room wall / floor / ceiling, one per object), the distance and the
axis of the surface normal, which is all that shading (skyboxes) and the view features need.

Cube faces and MatterSim (``src/lib/NavGraph.cpp``, ``MatterSim.cpp`` and the shaders in
peteanderson80/Matterport3DSimulator): the faces are bound as GL cube-map textures, skybox 0 -> +Y,
1 -> +Z, 2 -> +X, 3 -> -Z, 4 -> -X, 5 -> -Y; the cube is drawn with ``ModelView = View * R`` (R the pose
rotation) and the texture is looked up with the untransformed cube vertex; the rendered frame is read back
with ``glReadPixels`` without a flip. Working that through (with the OpenGL cube-map face/texel rules,
texel row 0 = the JPEG's top row), a texel whose cube-map direction is ``v`` shows the world direction
``-R @ v``. :func:`face_directions` implements exactly that, so MatterSim (and our own renderer, which
reproduces it) sees these skyboxes upright and with heading 0 looking along +y. With the poses of
:func:`envs.world.layout.pose_matrix` face 0 looks up, 5 down, 3 along the camera's optical axis and
1-4 go around clockwise (as in the real Matterport skyboxes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from envs.world.layout import CEILING, COLOURS, DOOR_HEIGHT, House

# (face index) -> cube-map target axis and sign: 0 +Y, 1 +Z, 2 +X, 3 -Z, 4 -X, 5 -Y
FACE_TARGETS = {0: (1, 1.0), 1: (2, 1.0), 2: (0, 1.0), 3: (2, -1.0), 4: (0, -1.0), 5: (1, -1.0)}

WALL_COLOURS: dict[str, tuple[int, int, int]] = {
    "kitchen": (236, 222, 160), "bedroom": (165, 190, 225), "bathroom": (200, 230, 230),
    "living room": (225, 200, 165), "hallway": (190, 185, 180), "office": (180, 215, 175),
    "dining room": (215, 160, 130),
}
FLOOR_COLOURS: dict[str, tuple[int, int, int]] = {
    "kitchen": (170, 170, 160), "bedroom": (150, 110, 75), "bathroom": (215, 215, 225),
    "living room": (135, 95, 60), "hallway": (120, 100, 80), "office": (110, 110, 125),
    "dining room": (140, 90, 55),
}
CEILING_COLOUR = (245, 245, 240)


@dataclass
class Surfaces:
    """The labelled surfaces of a house: label ``3r, 3r+1, 3r+2`` = wall, floor, ceiling of room r;
    label ``3R + k`` = object k."""

    rgb: np.ndarray  # [L, 3] float32 base colours
    room_rect: np.ndarray  # [R, 4] (x0, y0, x1, y1)
    room_z: np.ndarray  # [R] floor height
    doors: np.ndarray  # [R, 4, Kd, 3] per room and wall side (x0, x1, y0, y1): (u0, u1, neighbour); pad u0 > u1
    boxes: np.ndarray  # [R, Ko, 6] object boxes per room; pad with empty boxes
    box_label: np.ndarray  # [R, Ko] label of each box


def surfaces(house: House) -> Surfaces:
    """Arrays describing ``house`` for :func:`cast`."""
    n_rooms = len(house.rooms)
    rgb = np.zeros((3 * n_rooms + len(house.objects), 3), np.float32)
    for r, room in enumerate(house.rooms):
        rgb[3 * r] = WALL_COLOURS[room.kind]
        rgb[3 * r + 1] = FLOOR_COLOURS[room.kind]
        rgb[3 * r + 2] = CEILING_COLOUR
    for k, obj in enumerate(house.objects):
        rgb[3 * n_rooms + k] = COLOURS[obj.colour] if obj.kind != "stairs" else (110, 80, 55)
    rect = np.array([room.rect for room in house.rooms], np.float64)
    room_z = np.array([room.z for room in house.rooms], np.float64)

    door_lists: list[list[list[tuple[float, float, int]]]] = [[[] for _ in range(4)] for _ in range(n_rooms)]
    for door in house.doors:
        a, b = door.rooms
        u = door.centre[1 - door.axis]  # position along the wall
        span = (u - 0.5, u + 0.5)
        for me, other in ((a, b), (b, a)):
            # which side of my rectangle the wall is: low (0) or high (1) along the door's axis
            side = 2 * door.axis + (0 if abs(rect[me, door.axis] - door.centre[door.axis]) < 1e-6 else 1)
            door_lists[me][side].append((span[0], span[1], other))
    kd = max(1, max(len(s) for room in door_lists for s in room))
    doors = np.zeros((n_rooms, 4, kd, 3))
    doors[..., 0], doors[..., 1], doors[..., 2] = 1.0, 0.0, -1  # empty span
    for r in range(n_rooms):
        for side in range(4):
            for k, entry in enumerate(door_lists[r][side]):
                doors[r, side, k] = entry

    per_room: list[list[int]] = [[] for _ in range(n_rooms)]
    for k, obj in enumerate(house.objects):
        per_room[obj.room].append(k)
    ko = max(1, max(len(p) for p in per_room))
    boxes = np.zeros((n_rooms, ko, 6))
    boxes[..., :3], boxes[..., 3:] = 1e6, -1e6  # empty box: never hit
    box_label = np.full((n_rooms, ko), -1, np.int64)
    for r, members in enumerate(per_room):
        for j, k in enumerate(members):
            boxes[r, j] = house.objects[k].box
            box_label[r, j] = 3 * n_rooms + k
    return Surfaces(rgb, rect, room_z, doors, boxes, box_label)


def cast(s: Surfaces, room: np.ndarray, origin: np.ndarray, direction: np.ndarray, max_rooms: int = 6
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cast rays; returns ``(label [N] int, distance [N], normal axis [N] in 0..2, hit point [N, 3])``.

    ``room`` [N] is the room each ray starts in, ``origin`` [N, 3], ``direction`` [N, 3] unit vectors.
    Rays are processed room by room (all rays of a panorama start in one room), so each step is a
    broadcast against one room's few boxes rather than a gather per ray. A ray that passes ``max_rooms``
    doors without hitting anything (never, in practice) keeps label -1.
    """
    n = len(origin)
    d = np.where(np.abs(direction) < 1e-9, 1e-9, direction).astype(np.float32)
    inv = 1.0 / d
    label = np.full(n, -1, np.int64)
    dist = np.zeros(n, np.float32)
    axis = np.zeros(n, np.int64)
    point = np.zeros((n, 3), np.float32)
    cur = np.asarray(room, np.int64).copy()
    o = np.asarray(origin, np.float32).copy()
    travelled = np.zeros(n, np.float32)
    active = np.arange(n)
    for _ in range(max_rooms):
        if not len(active):
            break
        moved = []
        for r in np.unique(cur[active]):
            group = active[cur[active] == r]
            go = _cast_in_room(s, int(r), group, o, d, inv, label, dist, axis, point, travelled, cur)
            moved.append(go)
        active = np.concatenate(moved)
    return label, dist, axis, point


def _cast_in_room(s: Surfaces, r: int, idx: np.ndarray, o: np.ndarray, d: np.ndarray, inv: np.ndarray,
                  label: np.ndarray, dist: np.ndarray, axis: np.ndarray, point: np.ndarray,
                  travelled: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Advance rays ``idx`` through room ``r``: finish those that hit something, move the rest through doors."""
    oo, dd, ii = o[idx], d[idx], inv[idx]
    x0, y0, x1, y1 = (float(v) for v in s.room_rect[r])
    z0 = float(s.room_z[r])
    tx = np.where(dd[:, 0] > 0, x1 - oo[:, 0], x0 - oo[:, 0]) * ii[:, 0]
    ty = np.where(dd[:, 1] > 0, y1 - oo[:, 1], y0 - oo[:, 1]) * ii[:, 1]
    tz = np.where(dd[:, 2] > 0, z0 + CEILING - oo[:, 2], z0 - oo[:, 2]) * ii[:, 2]
    t_wall = np.minimum(tx, ty)
    t_room = np.minimum(t_wall, tz)
    # objects: slab test against every box of the room
    t_obj = np.full(len(idx), np.inf, np.float32)
    k_obj = np.zeros(len(idx), np.int64)
    ax_obj = np.zeros(len(idx), np.int64)
    shared = bool(np.all(oo == oo[:1]))  # every ray of a panorama starts at the camera
    for k, box in enumerate(s.boxes[r]):
        if s.box_label[r, k] < 0:
            continue
        cand = np.arange(len(idx))
        if shared:
            # cull by the box's bounding cone: most boxes cover a small part of the sphere of directions
            centre = (box[:3] + box[3:]) / 2 - oo[0]
            radius = float(np.linalg.norm(box[3:] - box[:3])) / 2
            reach = float(np.linalg.norm(centre))
            if reach > radius:
                cos_cone = np.sqrt(1.0 - (radius / reach) ** 2)
                axis_dir = (centre / reach).astype(np.float32)  # (explicit sum: BLAS threads stall on a busy machine)
                cosine = dd[:, 0] * axis_dir[0] + dd[:, 1] * axis_dir[1] + dd[:, 2] * axis_dir[2]
                cand = np.flatnonzero(cosine >= cos_cone - 1e-4)
        if not len(cand):
            continue
        # per-axis entry/exit distances, component-wise (much faster than reductions over a [n, 3] axis)
        near, far = [], []
        for a in range(3):
            t1 = (np.float32(box[a]) - oo[cand, a]) * ii[cand, a]
            t2 = (np.float32(box[a + 3]) - oo[cand, a]) * ii[cand, a]
            near.append(np.minimum(t1, t2))
            far.append(np.maximum(t1, t2))
        tnear = np.maximum(np.maximum(near[0], near[1]), near[2])
        tfar = np.minimum(np.minimum(far[0], far[1]), far[2])
        better = (tfar >= tnear) & (tnear > 1e-6) & (tnear < t_obj[cand])
        hit = cand[better]
        t_obj[hit] = tnear[better]
        k_obj[hit] = k
        ax_obj[hit] = np.where(near[2] == tnear, 2, np.where(near[1] == tnear, 1, 0))[better]

    on_obj = t_obj < t_room
    on_z = ~on_obj & (tz <= t_wall)
    on_wall = ~on_obj & ~on_z
    t_hit = np.where(on_obj, t_obj, t_room)
    p = oo + t_hit[:, None] * dd
    wall_axis = (tx > ty).astype(np.int64)
    side = 2 * wall_axis + (dd[np.arange(len(idx)), wall_axis] > 0)
    u = np.where(wall_axis == 0, p[:, 1], p[:, 0])
    spans = s.doors[r][side]  # [n, Kd, 3]
    in_span = (u[:, None] >= spans[:, :, 0]) & (u[:, None] <= spans[:, :, 1])
    through = on_wall & in_span.any(axis=1) & (p[:, 2] < z0 + DOOR_HEIGHT)

    done = ~through
    fin = idx[done]
    surface = 3 * r + np.where(on_z, np.where(dd[:, 2] > 0, 2, 1), 0)
    label[fin] = np.where(on_obj, s.box_label[r][k_obj], surface)[done]
    axis[fin] = np.where(on_obj, ax_obj, np.where(on_z, 2, wall_axis))[done]
    dist[fin] = (travelled[idx] + t_hit)[done]
    point[fin] = p[done]
    go = idx[through]
    travelled[go] += t_hit[through]
    o[go] = p[through] + 1e-4 * dd[through]
    cur[go] = spans[np.arange(len(idx)), in_span.argmax(axis=1), 2][through].astype(np.int64)
    return go


def face_directions(size: int, rotation: np.ndarray) -> np.ndarray:
    """World directions ``[6, size, size, 3]`` of the texel centres of the six skybox faces of a pose.

    Texel (row i, column j) of face f has cube-map coordinates ``sc, tc = 2(j+.5)/size - 1, 2(i+.5)/size - 1``
    and, by the OpenGL face rules, direction v: +X (1, -tc, -sc), -X (-1, -tc, sc), +Y (sc, 1, tc),
    -Y (sc, -1, -tc), +Z (sc, -tc, 1), -Z (-sc, -tc, -1). MatterSim shows it at world direction -R v.
    """
    rot = np.asarray(rotation, np.float32)[:3, :3]
    return -np.einsum("fijk,lk->fijl", _cube_directions(size), rot)  # einsum: no BLAS thread pool


@lru_cache(maxsize=4)
def _cube_directions(size: int) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size * 2 - 1
    tc, sc = np.meshgrid(c, c, indexing="ij")
    one = np.ones_like(sc)
    by_target = {
        (0, 1.0): (one, -tc, -sc), (0, -1.0): (-one, -tc, sc),
        (1, 1.0): (sc, one, tc), (1, -1.0): (sc, -one, -tc),
        (2, 1.0): (sc, -tc, one), (2, -1.0): (-sc, -tc, -one),
    }
    v = np.stack([np.stack(by_target[FACE_TARGETS[f]], axis=-1) for f in range(6)])  # [6, S, S, 3]
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def shade(s: Surfaces, label: np.ndarray, dist: np.ndarray, axis: np.ndarray, point: np.ndarray) -> np.ndarray:
    """RGB uint8 for ray hits: base colour, a light per surface orientation, tiles on floors, skirting on walls."""
    base = s.rgb[np.maximum(label, 0)]
    light = np.array([0.82, 0.93, 1.0], np.float32)[axis]
    n_rooms = len(s.room_rect)
    is_room = label < 3 * n_rooms
    kind = np.where(is_room, label % 3, -1)
    room_z = s.room_z[np.minimum(label // 3, n_rooms - 1)]
    tiles = ((np.floor(point[:, 0] / 0.6) + np.floor(point[:, 1] / 0.6)) % 2) * 0.08
    light = np.where(kind == 1, 0.72 + tiles, light)
    light = np.where((kind == 0) & (point[:, 2] - room_z < 0.12), 0.55, light)  # skirting board
    light = light / (1.0 + 0.035 * dist)
    rgb = base * light[:, None]
    rgb[label < 0] = 0
    return np.minimum(rgb, 255.0).astype(np.uint8)


def render_skybox(s: Surfaces, room: int, position: np.ndarray, rotation: np.ndarray, size: int) -> np.ndarray:
    """The six cube faces ``[6, size, size, 3]`` uint8 seen from ``position`` in ``room``."""
    dirs = face_directions(size, rotation).reshape(-1, 3)
    origin = np.broadcast_to(np.asarray(position, np.float64), dirs.shape)
    label, dist, axis, point = cast(s, np.full(len(dirs), room), origin, dirs)
    return shade(s, label, dist, axis, point).reshape(6, size, size, 3)
