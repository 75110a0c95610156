"""Houses of the built-in world: rooms on a grid, doors, objects, viewpoints and the navigation graph.

A house has one or two floors. Each floor is a rectangle cut by a grid into rooms (every grid cell is a
room, so neighbouring rooms share a wall); doors are openings in shared walls, chosen as a random spanning
tree of the grid plus a few extra. A second floor sits 3 m above part of the first, joined by a staircase
that stands in the two stacked rooms. Objects are coloured boxes standing against the walls, clear of the
doors. Viewpoints (panoramas) stand in front of every door on both sides, plus free ones, so that a move
through a door is a short straight line that passes the opening (as in the real scans).

Graph edges (``unobstructed``, symmetric) join every pair of viewpoints in the same room, the two
viewpoints facing each other across a door, and the two ends of a staircase. A few viewpoints are
``included: false`` (the real data has them); they keep ``unobstructed`` flags to their room-mates, as
some real excluded viewpoints do, so loaders must drop them themselves.

Every quantity comes from one ``numpy.random.Generator`` seeded per house, so a house depends only on the
world seed and its index.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

FLOOR_HEIGHT = 3.0  # z offset of the second floor (m)
CEILING = 2.8  # room height above its floor (m)
DOOR_WIDTH = 1.0
DOOR_HEIGHT = 2.1
DOOR_STANDOFF = 0.9  # a doorway viewpoint stands this far in front of the door's centre

# Room types and the objects each may hold: kind -> (width along the wall, depth, height) in metres.
ROOM_OBJECTS: dict[str, list[str]] = {
    "kitchen": ["fridge", "stove", "sink", "table", "cabinet", "clock"],
    "bedroom": ["bed", "wardrobe", "lamp", "dresser", "mirror", "plant"],
    "bathroom": ["bathtub", "toilet", "sink", "mirror", "towel rack"],
    "living room": ["sofa", "tv", "armchair", "plant", "fireplace", "piano"],
    "hallway": ["painting", "rug", "shelf", "coat rack", "vase", "clock"],
    "office": ["desk", "chair", "bookshelf", "computer", "lamp", "plant"],
    "dining room": ["dining table", "cabinet", "chandelier", "vase", "painting", "chair"],
}
ROOM_TYPES: list[str] = list(ROOM_OBJECTS)
OBJECT_SIZES: dict[str, tuple[float, float, float]] = {
    "fridge": (0.8, 0.7, 1.8), "stove": (0.8, 0.6, 0.9), "sink": (0.9, 0.55, 0.9), "table": (1.4, 0.8, 0.75),
    "cabinet": (1.2, 0.45, 1.0), "clock": (0.4, 0.1, 0.4), "bed": (1.6, 2.0, 0.6), "wardrobe": (1.2, 0.6, 2.0),
    "lamp": (0.4, 0.4, 1.5), "dresser": (1.1, 0.5, 0.9), "mirror": (0.7, 0.05, 1.0), "plant": (0.5, 0.5, 1.2),
    "bathtub": (1.7, 0.75, 0.6), "toilet": (0.45, 0.7, 0.8), "towel rack": (0.7, 0.15, 1.1),
    "sofa": (2.0, 0.9, 0.85), "tv": (1.2, 0.3, 1.2), "armchair": (0.9, 0.9, 0.9), "fireplace": (1.4, 0.5, 1.2),
    "piano": (1.5, 0.6, 1.2), "painting": (1.0, 0.05, 0.8), "rug": (1.6, 1.0, 0.03), "shelf": (1.0, 0.35, 1.6),
    "coat rack": (0.5, 0.5, 1.8), "vase": (0.35, 0.35, 0.9), "desk": (1.4, 0.7, 0.75), "chair": (0.5, 0.5, 0.9),
    "bookshelf": (1.2, 0.4, 2.0), "computer": (0.6, 0.4, 1.2), "dining table": (1.8, 1.0, 0.75),
    "chandelier": (0.8, 0.8, 0.6), "stairs": (1.0, 2.4, 1.5),
}
# Objects that hang on the wall or the ceiling: the box's bottom is raised.
OBJECT_LIFT: dict[str, float] = {"clock": 1.6, "mirror": 1.0, "painting": 1.2, "towel rack": 0.4,
                                 "chandelier": 2.1, "tv": 0.5}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "blue": (40, 70, 200), "green": (40, 160, 60), "white": (235, 235, 235),
    "black": (25, 25, 25), "brown": (120, 75, 40), "yellow": (230, 200, 40), "grey": (130, 130, 130),
    "orange": (235, 130, 30), "purple": (130, 50, 160),
}
OBJECT_KINDS: list[str] = sorted(OBJECT_SIZES)


@dataclass
class Room:
    """One room: an axis-aligned rectangle ``(x0, y0, x1, y1)`` on floor ``floor``."""

    index: int
    kind: str
    floor: int
    rect: tuple[float, float, float, float]
    cell: tuple[int, int]

    @property
    def z(self) -> float:
        return self.floor * FLOOR_HEIGHT


@dataclass
class Door:
    """An opening in the wall shared by ``rooms[0]`` and ``rooms[1]``, centred at ``centre`` (x, y)."""

    rooms: tuple[int, int]
    axis: int  # 0: the wall is a line x = const; 1: the wall is a line y = const
    centre: tuple[float, float]


@dataclass
class Obj:
    """A coloured box standing in a room. ``box`` is ``(x0, y0, z0, x1, y1, z1)`` in world coordinates."""

    kind: str
    colour: str
    room: int
    box: tuple[float, float, float, float, float, float]

    @property
    def name(self) -> str:
        return self.kind if self.kind == "stairs" else f"{self.colour} {self.kind}"

    @property
    def centre(self) -> np.ndarray:
        b = self.box
        return np.array([(b[0] + b[3]) / 2, (b[1] + b[4]) / 2, (b[2] + b[5]) / 2])


@dataclass
class Viewpoint:
    """A panorama: position of the camera (z = floor + height), its room and the yaw of its pose."""

    id: str
    room: int
    position: np.ndarray
    height: float
    yaw: float
    included: bool = True


@dataclass
class House:
    """One scan of the world."""

    scan: str
    rooms: list[Room]
    doors: list[Door]
    objects: list[Obj]
    viewpoints: list[Viewpoint] = field(default_factory=list)
    unobstructed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    stairs: tuple[int, int] | None = None  # the two viewpoints joined by the staircase

    @property
    def floors(self) -> int:
        return 1 + max(r.floor for r in self.rooms)


def hex_id(*parts: object) -> str:
    """A 32-hex-character id (like Matterport's viewpoint ids), a pure function of ``parts``."""
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def scan_id(seed: int, house: int) -> str:
    """An 11-character alphanumeric scan id (like ``17DRP5sb8fy``), a pure function of seed and index."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    n = int(hex_id("scan", seed, house), 16)
    chars = []
    for _ in range(11):
        n, r = divmod(n, len(alphabet))
        chars.append(alphabet[r])
    return "".join(chars)


def pose_matrix(position: np.ndarray, yaw: float) -> np.ndarray:
    """The 4x4 pose MatterSim reads: Matterport's camera convention (y down, optical axis z) turned to ``yaw``.

    Columns of the rotation: x = (cos yaw, -sin yaw, 0), y = (0, 0, -1) (down), z = (sin yaw, cos yaw, 0),
    i.e. the camera looks horizontally at heading ``yaw`` (clockwise from +y). With MatterSim's cube-map
    rendering this makes skybox face 0 look up, 5 down and face 3 along the optical axis (see raycast.py).
    """
    c, s = math.cos(yaw), math.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0.0, s], [-s, 0.0, c], [0.0, -1.0, 0.0]]
    pose[:3, 3] = position
    return pose


# ---------------------------------------------------------------------------------------------- generation


def _grid_edges(cols: int, rows: int, cells: set[tuple[int, int]]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    edges = []
    for c, r in sorted(cells):
        for nc, nr in ((c + 1, r), (c, r + 1)):
            if (nc, nr) in cells:
                edges.append(((c, r), (nc, nr)))
    return edges


def _spanning_doors(rng: np.random.Generator, cells: list[tuple[int, int]],
                    edges: list[tuple[tuple[int, int], tuple[int, int]]], extra: float) -> list[tuple]:
    """A random spanning tree of the grid (every room reachable) plus each other wall with prob ``extra``."""
    parent = {c: c for c in cells}

    def find(c):
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    chosen, rest = [], []
    for k in rng.permutation(len(edges)):
        a, b = edges[k]
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            chosen.append(edges[k])
        else:
            rest.append(edges[k])
    chosen += [e for e in rest if rng.random() < extra]
    return sorted(chosen)


def _place_objects(rng: np.random.Generator, house: House, room: Room, kinds: list[str],
                   used_names: set[str], door_spans: list[tuple[int, float, float, float]]) -> None:
    """Put boxes against the walls of ``room``, away from its doors and from each other."""
    x0, y0, x1, y1 = room.rect
    placed: list[tuple[float, float, float, float]] = [
        (o.box[0], o.box[1], o.box[3], o.box[4]) for o in house.objects if o.room == room.index]
    for kind in kinds:
        w, d, h = OBJECT_SIZES[kind]
        colours = [c for c in COLOURS if f"{c} {kind}" not in used_names] or list(COLOURS)
        colour = colours[int(rng.integers(len(colours)))] if kind != "stairs" else "brown"
        for _ in range(30):
            side = int(rng.integers(4))  # 0: x0 wall, 1: x1 wall, 2: y0 wall, 3: y1 wall
            along = (y0, y1) if side < 2 else (x0, x1)
            if along[1] - along[0] < w + 0.4:
                continue
            u = float(rng.uniform(along[0] + 0.2 + w / 2, along[1] - 0.2 - w / 2))
            if kind == "rug":  # lies in the middle of the floor: any side, pulled off the wall
                off = 0.9
            elif kind == "chandelier":
                off = (x1 - x0 if side < 2 else y1 - y0) / 2 - d / 2
            else:
                off = 0.05
            if side == 0:
                rect = (x0 + off, u - w / 2, x0 + off + d, u + w / 2)
            elif side == 1:
                rect = (x1 - off - d, u - w / 2, x1 - off, u + w / 2)
            elif side == 2:
                rect = (u - w / 2, y0 + off, u + w / 2, y0 + off + d)
            else:
                rect = (u - w / 2, y1 - off - d, u + w / 2, y1 - off)
            if any(_overlap(rect, p, 0.15) for p in placed):
                continue
            # keep a 1.4 m clear zone in front of every door (where the doorway viewpoints stand)
            if any(_overlap(rect, zone, 0.0) for zone in _door_zones(door_spans)):
                continue
            lift = OBJECT_LIFT.get(kind, 0.0)
            box = (rect[0], rect[1], room.z + lift, rect[2], rect[3], room.z + lift + h)
            house.objects.append(Obj(kind, colour, room.index, tuple(round(v, 4) for v in box)))
            placed.append(rect)
            used_names.add(f"{colour} {kind}")
            break


def _overlap(a: tuple, b: tuple, margin: float) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _door_zones(door_spans: list[tuple[int, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Floor rectangles kept free in front of doors: (axis, x, y, sign-free) -> a 1.6 x 1.5 m square each."""
    zones = []
    for axis, x, y, _ in door_spans:
        if axis == 0:
            zones.append((x - 1.5, y - 0.8, x + 1.5, y + 0.8))
        else:
            zones.append((x - 0.8, y - 1.5, x + 0.8, y + 1.5))
    return zones


def _place_viewpoints(rng: np.random.Generator, room: Room, fixed: list[np.ndarray], target: int,
                      objects: list[Obj]) -> list[np.ndarray]:
    """Free viewpoints in ``room``: at least 1.5 m from each other and the ``fixed`` ones, off the objects."""
    x0, y0, x1, y1 = room.rect
    points = list(fixed)
    min_gap = 1.6
    tries = 0
    while len(points) < target and tries < 400:
        tries += 1
        if tries % 100 == 0:
            min_gap -= 0.1
        p = np.array([rng.uniform(x0 + 0.8, x1 - 0.8), rng.uniform(y0 + 0.8, y1 - 0.8)])
        if any(np.linalg.norm(p - q) < min_gap for q in points):
            continue
        if any(o.box[0] - 0.3 < p[0] < o.box[3] + 0.3 and o.box[1] - 0.3 < p[1] < o.box[4] + 0.3
               for o in objects if o.room == room.index and o.kind not in ("rug", "chandelier")):
            continue
        points.append(p)
    return points[len(fixed):]


def generate_house(seed: int, index: int, second_floor_prob: float = 0.35) -> House:
    """Build house ``index`` of the world with seed ``seed`` (a pure function of both)."""
    rng = np.random.default_rng([seed, index, 7919])
    scan = scan_id(seed, index)
    cols, rows = [(3, 2), (3, 3), (4, 2), (2, 3), (4, 3)][int(rng.integers(5))]
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(3.6, 5.6, cols))]).round(3)
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(3.6, 5.6, rows))]).round(3)
    floors: list[list[tuple[int, int]]] = [[(c, r) for r in range(rows) for c in range(cols)]]
    if rng.random() < second_floor_prob:
        upper = [(c, r) for r in range(min(rows, 2)) for c in range(min(cols, 2))]
        floors.append(upper)

    rooms: list[Room] = []
    cell_room: dict[tuple[int, int, int], int] = {}
    for f, cells in enumerate(floors):
        # every type once before any repeats, so houses have varied rooms
        kinds: list[str] = []
        while len(kinds) < len(cells):
            kinds += [ROOM_TYPES[k] for k in rng.permutation(len(ROOM_TYPES))]
        for (c, r), kind in zip(cells, kinds):
            cell_room[(f, c, r)] = len(rooms)
            rooms.append(Room(len(rooms), kind, f, (xs[c], ys[r], xs[c + 1], ys[r + 1]), (c, r)))

    doors: list[Door] = []
    for f, cells in enumerate(floors):
        edges = _grid_edges(cols, rows, set(cells))
        for a, b in _spanning_doors(rng, cells, edges, extra=0.3):
            ra, rb = cell_room[(f, *a)], cell_room[(f, *b)]
            if a[0] != b[0]:  # horizontal neighbours: the wall is x = xs[b.col]
                lo, hi = max(ys[a[1]], ys[b[1]]), min(ys[a[1] + 1], ys[b[1] + 1])
                centre = (float(xs[b[0]]), float(rng.uniform(lo + 1.2, hi - 1.2)))
                doors.append(Door((ra, rb), 0, centre))
            else:
                lo, hi = max(xs[a[0]], xs[b[0]]), min(xs[a[0] + 1], xs[b[0] + 1])
                centre = (float(rng.uniform(lo + 1.2, hi - 1.2)), float(ys[b[1]]))
                doors.append(Door((ra, rb), 1, centre))

    used_names: set[str] = set()
    door_spans: dict[int, list[tuple[int, float, float, float]]] = {r.index: [] for r in rooms}
    for d in doors:
        for r in d.rooms:
            door_spans[r].append((d.axis, d.centre[0], d.centre[1], 0.0))
    house = House(scan, rooms, doors, [])
    stair_rooms: tuple[int, int] | None = None
    if len(floors) > 1:
        # the staircase stands in a lower room; the upper room above has its top (same footprint)
        for k in rng.permutation(len(floors[1])):
            low, high = cell_room[(0, *floors[1][k])], cell_room[(1, *floors[1][k])]
            _place_objects(rng, house, rooms[low], ["stairs"], used_names, door_spans[low] + door_spans[high])
            if house.objects:
                b = house.objects[0].box
                top = (b[0], b[1], rooms[high].z, b[3], b[4], rooms[high].z + 1.0)
                house.objects.append(Obj("stairs", "brown", high, top))
                stair_rooms = (low, high)
                break
        if stair_rooms is None:  # no room could hold a staircase: keep the ground floor only
            rooms[:] = [r for r in rooms if r.floor == 0]
            doors[:] = [d for d in doors if max(d.rooms) < len(rooms)]
    for room in rooms:
        n = int(rng.integers(2, 5))
        options = ROOM_OBJECTS[room.kind]
        wanted = [options[k] for k in rng.permutation(len(options))[:n]]
        _place_objects(rng, house, room, wanted, used_names, door_spans[room.index])

    # viewpoints: doorway ones first (a pair per door), then free ones
    positions: list[tuple[int, np.ndarray]] = []  # (room, xy)
    door_vps: list[tuple[int, int]] = []
    for d in doors:
        pair = []
        for r in d.rooms:
            rc = rooms[r].rect
            centre = np.array(d.centre)
            inward = np.zeros(2)
            inward[d.axis] = 1.0 if (rc[d.axis] + rc[d.axis + 2]) / 2 > centre[d.axis] else -1.0
            positions.append((r, centre + DOOR_STANDOFF * inward))
            pair.append(len(positions) - 1)
        door_vps.append((pair[0], pair[1]))
    stair_vps: list[int] = []
    for room in rooms:
        fixed = [p for r, p in positions if r == room.index]
        if stair_rooms and room.index in stair_rooms:
            st = next(o for o in house.objects if o.room == room.index and o.kind == "stairs")
            foot = _stair_foot(st, room, top=room.floor > 0)
            positions.append((room.index, foot))
            stair_vps.append(len(positions) - 1)
            fixed.append(foot)
        area = (room.rect[2] - room.rect[0]) * (room.rect[3] - room.rect[1])
        target = max(len(fixed) + 1, 2 if area < 15 else 3 if area < 22 else 4)
        for p in _place_viewpoints(rng, room, fixed, target, house.objects):
            positions.append((room.index, p))

    n_included = len(positions)
    n_excluded = int(rng.integers(1, 3))
    excluded_rooms = [int(k) for k in rng.choice(len(rooms), size=n_excluded, replace=False)]
    for r in excluded_rooms:
        extra = _place_viewpoints(rng, rooms[r], [p for q, p in positions if q == r], 1 + sum(
            1 for q, _ in positions if q == r), house.objects)
        positions += [(r, p) for p in extra]

    for k, (r, xy) in enumerate(positions):
        height = float(rng.uniform(1.45, 1.6))
        z = rooms[r].z + height
        yaw = float(rng.uniform(0.0, 2 * math.pi))
        house.viewpoints.append(Viewpoint(hex_id("vp", seed, index, k), r, np.array([xy[0], xy[1], z]).round(5),
                                          round(height, 5), yaw))
    for v in house.viewpoints[n_included:]:
        v.included = False

    n = len(house.viewpoints)
    unob = np.zeros((n, n), bool)
    by_room: dict[int, list[int]] = {}
    for k, v in enumerate(house.viewpoints):
        by_room.setdefault(v.room, []).append(k)
    for members in by_room.values():
        for i in members:
            for j in members:
                unob[i, j] = i != j
    for a, b in door_vps:
        unob[a, b] = unob[b, a] = True
    if stair_vps:
        a, b = stair_vps
        unob[a, b] = unob[b, a] = True
        house.stairs = (a, b)
    house.unobstructed = unob
    return house


def _stair_foot(stairs: Obj, room: Room, top: bool) -> np.ndarray:
    """Where a viewpoint stands at the staircase: 0.7 m in front of its free end (bottom), or beside it (top).

    The two ends must differ in x-y, or the move up the stairs would be straight up and MatterSim's
    field-of-view test (which projects the direction on the floor) could never see it.
    """
    b = stairs.box
    centre = np.array([(b[0] + b[3]) / 2, (b[1] + b[4]) / 2])
    rc = np.array([(room.rect[0] + room.rect[2]) / 2, (room.rect[1] + room.rect[3]) / 2])
    half = np.array([(b[3] - b[0]) / 2, (b[4] - b[1]) / 2])
    step = rc - centre
    axis = int(np.argmax(np.abs(step) / np.maximum(half, 1e-6)))
    if top:
        axis = 1 - axis
    foot = centre.copy()
    foot[axis] += (1.0 if step[axis] >= 0 else -1.0) * (half[axis] + 0.7)
    lo = np.array(room.rect[:2]) + 0.5
    hi = np.array(room.rect[2:]) - 0.5
    return np.clip(foot, lo, hi)
