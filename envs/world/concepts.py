"""View features of the built-in world: what each of the 36 MatterSim views sees, as a D-dim vector.

For every view (``ix = heading_index + 12 * elevation_index``; heading ``30° * heading_index`` clockwise
from +y, elevation -30°, 0°, +30°) a grid of rays spanning the R2R camera (640x480, vertical field of view
60°) is cast into the house. Each hit adds the *concepts* of the surface it lands on (a room's wall adds
the room type, a floor adds "floor" and the room type, an object adds its kind, its colour and the
colour-kind pair, weighed up by ``OBJECT_SALIENCE``), weighted by nearness ``1 / (1 + d / 4 m)``. The per-view concept weights are mapped to
D dimensions by a fixed random projection (the same for every world, seeded by ``PROJECTION_SEED``) and a
little Gaussian noise is added. So the features carry exactly the landmarks that the instructions name,
where they are visible, and an agent that reads them can ground "the red sofa" or "the kitchen";
an agent given zero features cannot.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from envs.kernel.grid import R2R_CAMERA, VIEW_COUNT, view_elevation, view_heading
from envs.world.layout import COLOURS, OBJECT_KINDS, ROOM_TYPES, House
from envs.world.raycast import Surfaces, cast

PROJECTION_SEED = 20_240_901  # fixed: the "appearance" of a concept is the same in every world
OBJECT_SALIENCE = 4.0  # objects fill few rays of a view but are what instructions name: weigh them up
SURFACE_CONCEPTS = ["wall", "floor", "ceiling"]
RAYS_X, RAYS_Y = 8, 6  # rays per view


@lru_cache(maxsize=1)
def concept_vocabulary() -> tuple[str, ...]:
    """Every concept a feature can carry: room types, surfaces, object kinds, colours, colour-kind pairs."""
    pairs = [f"{c} {k}" for k in OBJECT_KINDS for c in COLOURS]
    return tuple(ROOM_TYPES + SURFACE_CONCEPTS + OBJECT_KINDS + list(COLOURS) + pairs)


@lru_cache(maxsize=4)
def concept_embeddings(dim: int) -> np.ndarray:
    """``[C, dim]`` float32 random projection of the concepts (unit-variance entries, fixed seed)."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return rng.standard_normal((len(concept_vocabulary()), dim)).astype(np.float32)


def concept_index(name: str) -> int:
    """Row of ``name`` (e.g. ``"kitchen"``, ``"red sofa"``) in :func:`concept_embeddings`."""
    return concept_vocabulary().index(name)


def label_concepts(house: House) -> np.ndarray:
    """``[L, C]`` concept weights of every surface label of ``house`` (labels as in ``raycast.surfaces``)."""
    vocab = {name: i for i, name in enumerate(concept_vocabulary())}
    n_rooms = len(house.rooms)
    out = np.zeros((3 * n_rooms + len(house.objects), len(vocab)), np.float32)
    for r, room in enumerate(house.rooms):
        out[3 * r, vocab[room.kind]], out[3 * r, vocab["wall"]] = 1.0, 0.5
        out[3 * r + 1, vocab[room.kind]], out[3 * r + 1, vocab["floor"]] = 0.6, 1.0
        out[3 * r + 2, vocab[room.kind]], out[3 * r + 2, vocab["ceiling"]] = 0.3, 1.0
    for k, obj in enumerate(house.objects):
        row = out[3 * n_rooms + k]
        row[vocab[obj.kind]] = 1.0
        if obj.kind != "stairs":
            row[vocab[obj.colour]] = 0.7
            row[vocab[obj.name]] = 1.0
            row[vocab[house.rooms[obj.room].kind]] = 0.2
        row *= OBJECT_SALIENCE
    return out


@lru_cache(maxsize=1)
def view_rays() -> np.ndarray:
    """``[36, RAYS_Y * RAYS_X, 3]`` unit directions spanning each discretized view's frustum (R2R camera)."""
    ty = math.tan(R2R_CAMERA.vfov / 2)
    tx = ty * (R2R_CAMERA.width / R2R_CAMERA.height)
    px = ((np.arange(RAYS_X) + 0.5) / RAYS_X * 2 - 1) * tx
    py = ((np.arange(RAYS_Y) + 0.5) / RAYS_Y * 2 - 1) * ty
    gy, gx = np.meshgrid(py, px, indexing="ij")
    out = np.zeros((VIEW_COUNT, RAYS_Y * RAYS_X, 3))
    for ix in range(VIEW_COUNT):
        h, e = view_heading(ix), view_elevation(ix)
        fwd = np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        up = np.cross(right, fwd)
        d = fwd + gx.reshape(-1, 1) * right + gy.reshape(-1, 1) * up
        out[ix] = d / np.linalg.norm(d, axis=1, keepdims=True)
    return out.astype(np.float32)


def label_embeddings(concepts: np.ndarray, dim: int) -> np.ndarray:
    """``[L, dim]``: each surface label's concepts projected (computed once per house)."""
    # einsum, not matmul: BLAS thread pools stall badly when the machine's cores are busy
    return np.einsum("lc,cd->ld", concepts, concept_embeddings(dim))


def view_label_weights(s: Surfaces, room: int, position: np.ndarray) -> np.ndarray:
    """``[36, L]`` nearness-weighted share of each surface label in each view of a panorama."""
    rays = view_rays().reshape(-1, 3)
    label, dist, _, _ = cast(s, np.full(len(rays), room), np.broadcast_to(position, rays.shape), rays)
    n_labels = len(s.rgb)
    weight = np.where(label >= 0, 1.0 / (1.0 + dist / 4.0), 0.0)
    view = np.repeat(np.arange(VIEW_COUNT), RAYS_X * RAYS_Y)
    flat = np.bincount(view * n_labels + np.maximum(label, 0), weights=weight, minlength=VIEW_COUNT * n_labels)
    return (flat.reshape(VIEW_COUNT, n_labels) / (RAYS_X * RAYS_Y)).astype(np.float32)


def view_features(label_weights: np.ndarray, label_emb: np.ndarray, noise: float,
                  rng: np.random.Generator) -> np.ndarray:
    """``[36, dim]`` float32 features: the projected concepts of what each view sees, plus Gaussian noise."""
    feats = np.einsum("vl,ld->vd", label_weights, label_emb)
    return (feats + noise * rng.standard_normal(feats.shape)).astype(np.float32)
