"""Instructions for world paths: a route plan read off the geometry, then sentences in four languages.

:func:`route_plan` turns a path (and its start heading) into steps that are true of the house: the first
turn relative to the start heading, later turns between moves (> 45°), landmarks passed (objects of the
current room ahead within 60° of the direction of travel, with the side they are on), rooms entered,
stairs, and the goal's nearest object. Sentences are then drawn from templates (:mod:`lexicon`) with a
seeded generator, so an agent must ground room and object names in what it sees. R2R gets short
English ones; RxR longer, more descriptive ones in en-US, en-IN, hi-IN and te-IN with word timings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.world import lexicon as lx
from envs.world.layout import House, Obj


@dataclass(frozen=True)
class Step:
    """One piece of a route: kind in turn / pass / enter / up / down / forward / stop."""

    kind: str
    word: str = ""  # turn direction, or the side a passed object is on
    obj: Obj | None = None
    room: str = ""


def wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def turn_word(rel: float) -> str:
    """Direction word for a relative heading (radians, clockwise positive): forward/left/right/around."""
    deg = math.degrees(rel)
    if abs(deg) < 30:
        return "forward"
    if abs(deg) > 150:
        return "around"
    return "right" if deg > 0 else "left"


def heading_to(a: np.ndarray, b: np.ndarray) -> float:
    """Heading (clockwise from +y) of the horizontal direction from a to b."""
    return math.atan2(float(b[0] - a[0]), float(b[1] - a[1]))


def _objects_ahead(house: House, room: int, at: np.ndarray, heading: float, reach: float) -> list[tuple[float, Obj, str]]:
    """Objects of ``room`` within 60° of ``heading`` from ``at`` and nearer than ``reach``: (angle, obj, side)."""
    out = []
    for obj in house.objects:
        if obj.room != room or obj.kind in ("stairs", "rug", "chandelier"):
            continue
        c = obj.centre
        if math.hypot(c[0] - at[0], c[1] - at[1]) > reach:
            continue
        rel = wrap(heading_to(at, c) - heading)
        if abs(rel) < math.radians(60):
            out.append((abs(rel), obj, "right" if rel > 0 else "left"))
    return sorted(out, key=lambda t: t[0])


def goal_object(house: House, goal: int) -> Obj:
    """The object of the goal's room nearest the goal viewpoint (named by "stop next to ...")."""
    v = house.viewpoints[goal]
    mine = [o for o in house.objects if o.room == v.room and o.kind != "stairs"] or \
        [o for o in house.objects if o.room == v.room]
    return min(mine, key=lambda o: float(np.hypot(*(o.centre[:2] - v.position[:2]))))


def route_plan(house: House, path: list[int], heading: float) -> list[Step]:
    """The steps of ``path`` (viewpoint indices) for an agent starting with ``heading``."""
    vps = house.viewpoints
    pos = [vps[k].position for k in path]
    headings = [heading_to(a, b) for a, b in zip(pos[:-1], pos[1:])]
    steps = [Step("turn", turn_word(wrap(headings[0] - heading)))]
    used: set[int] = set()
    for k, (a, b) in enumerate(zip(path[:-1], path[1:])):
        if k > 0:
            word = turn_word(wrap(headings[k] - headings[k - 1]))
            if word in ("left", "right", "around") and abs(wrap(headings[k] - headings[k - 1])) > math.radians(45):
                steps.append(Step("turn", word))
        ra, rb = house.rooms[vps[a].room], house.rooms[vps[b].room]
        if ra.floor != rb.floor:
            steps.append(Step("up" if rb.floor > ra.floor else "down"))
            continue
        seg = float(np.hypot(*(pos[k + 1][:2] - pos[k][:2])))
        ahead = [t for t in _objects_ahead(house, ra.index, pos[k], headings[k], seg + 1.0) if id(t[1]) not in used]
        if ahead:
            _, obj, side = ahead[0]
            used.add(id(obj))
            steps.append(Step("pass", side, obj))
        if ra.index != rb.index:
            steps.append(Step("enter", room=rb.kind))
        elif not ahead:
            steps.append(Step("forward"))
    # merge repeats of "forward"
    merged: list[Step] = []
    for s in steps:
        if merged and s.kind == "forward" and merged[-1].kind in ("forward", "turn"):
            continue
        merged.append(s)
    goal = path[-1]
    merged.append(Step("stop", obj=goal_object(house, goal), room=house.rooms[vps[goal].room].kind))
    return merged


# ------------------------------------------------------------------------------------------------ English


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


TURN_KEEP = 0.25  # share of turns an R2R-style instruction spells out; the rest are carried by landmarks


def r2r_instruction(plan: list[Step], rng: np.random.Generator) -> str:
    """One short R2R-style English instruction.

    Like human writers, it names landmarks more than turns: most turns are left out (kept with probability
    :data:`TURN_KEEP`), and a dropped turn before an object becomes "head towards the {obj}". So the way is
    found by grounding rooms and objects in what the agent sees; a blind agent must guess it.
    """
    t = lx.EN_R2R
    clauses: list[str] = []
    i = 0
    towards = False  # the previous turn was dropped: say where to head instead
    while i < len(plan) - 1:
        s = plan[i]
        if s.kind == "turn":
            if rng.random() < TURN_KEEP:
                clauses.append(_pick(rng, t["turn"][s.word]))
            else:
                towards = True
            i += 1
            continue
        if s.kind == "pass" and towards:
            clauses.append(_pick(rng, t["toward"]).format(obj=s.obj.name))
        elif s.kind == "pass" and i + 1 < len(plan) and plan[i + 1].kind == "enter":
            clauses.append(_pick(rng, t["pass_enter"]).format(obj=s.obj.name, room=plan[i + 1].room))
            i += 1
        elif s.kind == "pass":
            clauses.append(_pick(rng, t["pass"]).format(obj=s.obj.name))
        elif s.kind == "enter":
            clauses.append(_pick(rng, t["enter"]).format(room=s.room))
        elif s.kind in ("up", "down", "forward"):
            clauses.append(_pick(rng, t[s.kind]))
        towards = False
        i += 1
    text = ""
    for k, clause in enumerate(clauses):
        if k == 0:
            text = clause[0].upper() + clause[1:]
            continue
        text += _pick(rng, t["joins"]) + clause
    stop = plan[-1]
    ending = _pick(rng, t["stop_room"] if rng.random() < 0.4 else t["stop"])
    ending = ending.format(obj=stop.obj.name, room=stop.room)
    return (text + ". " if text else "") + ending


def rxr_instruction(plan: list[Step], language: str, start_room: str, facing: Obj | None,
                    rng: np.random.Generator) -> str:
    """One long, descriptive RxR-style instruction in ``language`` (en-US, en-IN, hi-IN, te-IN)."""
    if language in lx.EN_RXR:
        return _rxr_english(plan, lx.EN_RXR[language], start_room, facing, rng)
    return _rxr_indic(plan, language, start_room, rng)


def _rxr_english(plan: list[Step], t: dict, start_room: str, facing: Obj | None, rng: np.random.Generator) -> str:
    out = [_pick(rng, t["start"]).format(room=start_room)]
    if facing is not None:
        out.append(_pick(rng, t["facing"]).format(obj=facing.name))
    for s in plan[:-1]:
        if s.kind == "turn":
            out.append(_pick(rng, t["turn"][s.word]))
        elif s.kind == "pass":
            out.append(_pick(rng, t["pass_side"] if rng.random() < 0.7 else t["pass"]).format(obj=s.obj.name, side=s.word))
        elif s.kind == "enter":
            out.append(_pick(rng, t["enter"]).format(room=s.room))
        else:
            out.append(_pick(rng, t[s.kind]))
    stop = plan[-1]
    out.append(_pick(rng, t["stop"]).format(obj=stop.obj.name, room=stop.room))
    return " ".join(out)


def _hi_object(obj: Obj) -> str:
    noun, gender = lx.HI_OBJECTS[obj.kind]
    if obj.kind == "stairs":
        return noun
    colour = lx.HI_COLOURS[obj.colour][0 if gender == "m" else 1]
    return f"{colour} {noun}"


def _te_object(obj: Obj) -> str:
    noun = lx.TE_OBJECTS[obj.kind]
    return noun if obj.kind == "stairs" else f"{lx.TE_COLOURS[obj.colour]} {noun}"


def _rxr_indic(plan: list[Step], language: str, start_room: str, rng: np.random.Generator) -> str:
    hindi = language == "hi-IN"
    t = lx.HI if hindi else lx.TE

    def room(kind: str, into: bool) -> str:
        return lx.HI_ROOMS[kind] if hindi else lx.TE_ROOMS[kind][1 if into else 0]

    def obj(o: Obj) -> str:
        return _hi_object(o) if hindi else _te_object(o)

    out = [_pick(rng, t["start"]).format(room=room(start_room, False))]
    for s in plan[:-1]:
        if s.kind == "turn":
            out.append(_pick(rng, t["turn"][s.word]))
        elif s.kind == "pass":
            if rng.random() < 0.6:
                out.append(_pick(rng, t["pass_side"]).format(obj=obj(s.obj), side=t["sides"][s.word]))
            else:
                out.append(_pick(rng, t["pass"]).format(obj=obj(s.obj)))
        elif s.kind == "enter":
            out.append(_pick(rng, t["enter"]).format(room=room(s.room, True)))
        else:
            out.append(_pick(rng, t[s.kind]))
    out.append(_pick(rng, t["stop"]).format(obj=obj(plan[-1].obj)))
    return " ".join(out)


def timed_words(text: str, rng: np.random.Generator) -> list[dict]:
    """RxR's ``timed_instruction``: each whitespace-separated word with start and end times (s)."""
    t = float(rng.uniform(0.5, 1.5))
    out = []
    for word in text.split():
        length = 0.15 + 0.05 * len(word) + float(rng.uniform(0.0, 0.1))
        out.append({"word": word, "start_time": round(t, 1), "end_time": round(t + max(length, 0.1), 1)})
        t += length + (0.4 if word[-1] in ".,।" else 0.05)
    for w in out:  # rounding must not make a word end before it starts
        if w["end_time"] <= w["start_time"]:
            w["end_time"] = round(w["start_time"] + 0.1, 1)
    return out
