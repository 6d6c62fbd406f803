"""ALFWorld games written from ALFWorld's own domain, grammar and goal library, with its planner expert's plan.

ALFWorld's 3,553 training and 274 evaluation games are a separate download
(``alfworld-download``) that a machine without it cannot fetch. What the
package itself ships is enough to make games: the ``alfred`` PDDL domain and
text grammar (``alfworld.info``), the goal of every task type
(``alfworld.gen.goal_library``) and its task text templates. ``write_games``
lays out 24 games (4 per task type, one furnished room each) in the folder
layout ``alfworld-download`` uses, ``traj_data.json`` with ALFWorld's
``pddl_params``; each game file's ``walkthrough`` is the plan of ALFWorld's
planner expert (``AlfredExpertType.PLANNER``: TextWorld's
``policy_commands``, computed by Fast Downward on the game's PDDL), the
field ``ALFWorldEnv.gold_actions`` reads in real games too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOM: dict[str, tuple[str, bool]] = {
    # receptacle id stem -> (receptacle type, openable)
    "CounterTop": ("CounterTop", False),
    "DiningTable": ("DiningTable", False),
    "Fridge": ("Fridge", True),
    "Microwave": ("Microwave", True),
    "Sink": ("SinkBasin", False),  # ALFWorld names sink basins "Sink|...|SinkBasin": "sinkbasin 1"
    "Cabinet": ("Cabinet", True),
    "Drawer": ("Drawer", True),
    "Desk": ("Desk", False),
    "SideTable": ("SideTable", False),
    "Shelf": ("Shelf", False),
    "GarbageCan": ("GarbageCan", False),
}
"""The room's receptacles (one of each)."""

OBJECTS: dict[str, tuple[str, ...]] = {
    # object type -> its properties (pickupable unless "fixed")
    "Apple": ("heatable", "coolable", "cleanable"),
    "Tomato": ("heatable", "coolable", "cleanable"),
    "Potato": ("heatable", "coolable", "cleanable"),
    "Egg": ("heatable", "coolable"),
    "Lettuce": ("coolable", "cleanable"),
    "Mug": ("heatable", "coolable", "cleanable"),
    "Cup": ("heatable", "coolable", "cleanable"),
    "Plate": ("heatable", "coolable", "cleanable"),
    "Bowl": ("heatable", "coolable", "cleanable"),
    "Book": (),
    "CD": (),
    "Pen": (),
    "Pencil": (),
    "KeyChain": (),
    "CellPhone": (),
    "DeskLamp": ("fixed", "toggleable"),
}


@dataclass(frozen=True)
class GameSpec:
    """One game: task type, targets (ALFWorld's ``pddl_params``) and where each object starts."""

    task_type: str
    obj: str
    recep: str  # parent target (a receptacle type); "" for look_at_obj_in_light
    placements: tuple[tuple[str, str], ...]  # (object type, receptacle stem), one object each
    toggle: str = ""


def _spec(task_type: str, obj: str, recep: str, placements: str, toggle: str = "") -> GameSpec:
    pairs = tuple(tuple(p.split("@")) for p in placements.split())
    return GameSpec(task_type, obj, recep, pairs, toggle)  # type: ignore[arg-type]


GAMES: tuple[GameSpec, ...] = (
    _spec("pick_and_place_simple", "Apple", "Fridge", "Apple@CounterTop Mug@DiningTable Book@Shelf"),
    _spec("pick_and_place_simple", "Mug", "Cabinet", "Mug@Drawer Cup@CounterTop Apple@Fridge"),
    _spec("pick_and_place_simple", "Book", "Shelf", "Book@Desk Pen@Desk CellPhone@SideTable"),
    _spec("pick_and_place_simple", "CellPhone", "Drawer", "CellPhone@Fridge KeyChain@Drawer Pencil@Desk"),
    _spec("look_at_obj_in_light", "Book", "", "Book@Shelf DeskLamp@SideTable Pen@Desk", "DeskLamp"),
    _spec("look_at_obj_in_light", "CD", "", "CD@Drawer DeskLamp@Desk Book@Shelf", "DeskLamp"),
    _spec("look_at_obj_in_light", "Pen", "", "Pen@CounterTop DeskLamp@SideTable Pencil@Desk", "DeskLamp"),
    _spec("look_at_obj_in_light", "KeyChain", "", "KeyChain@Cabinet DeskLamp@Desk CellPhone@Drawer", "DeskLamp"),
    _spec("pick_clean_then_place_in_recep", "Plate", "Cabinet", "Plate@DiningTable Bowl@CounterTop Cup@Shelf"),
    _spec("pick_clean_then_place_in_recep", "Apple", "DiningTable", "Apple@Fridge Tomato@CounterTop Mug@Shelf"),
    _spec("pick_clean_then_place_in_recep", "Mug", "CounterTop", "Mug@Cabinet Cup@Cabinet Plate@Drawer"),
    _spec("pick_clean_then_place_in_recep", "Lettuce", "Fridge", "Lettuce@DiningTable Potato@CounterTop Egg@Fridge"),
    _spec("pick_heat_then_place_in_recep", "Potato", "CounterTop", "Potato@Fridge Apple@CounterTop Bowl@Shelf"),
    _spec("pick_heat_then_place_in_recep", "Egg", "DiningTable", "Egg@Fridge Tomato@DiningTable Cup@Cabinet"),
    _spec("pick_heat_then_place_in_recep", "Mug", "Cabinet", "Mug@CounterTop Plate@Cabinet Apple@Sink"),
    _spec("pick_heat_then_place_in_recep", "Tomato", "GarbageCan", "Tomato@DiningTable Potato@Drawer Egg@CounterTop"),
    _spec("pick_cool_then_place_in_recep", "Apple", "CounterTop", "Apple@DiningTable Mug@CounterTop Potato@Sink"),
    _spec("pick_cool_then_place_in_recep", "Tomato", "DiningTable", "Tomato@Microwave Lettuce@CounterTop Egg@Shelf"),
    _spec("pick_cool_then_place_in_recep", "Cup", "Shelf", "Cup@Sink Mug@Shelf Bowl@Cabinet"),
    _spec("pick_cool_then_place_in_recep", "Bowl", "Microwave", "Bowl@CounterTop Plate@DiningTable Apple@Fridge"),
    _spec("pick_two_obj_and_place", "CD", "Drawer", "CD@Desk CD@Shelf Book@Drawer"),
    _spec("pick_two_obj_and_place", "Pencil", "Desk", "Pencil@SideTable Pencil@Drawer Pen@Desk"),
    _spec("pick_two_obj_and_place", "Apple", "DiningTable", "Apple@Fridge Apple@CounterTop Tomato@DiningTable"),
    _spec("pick_two_obj_and_place", "KeyChain", "SideTable", "KeyChain@Cabinet KeyChain@Desk CellPhone@SideTable"),
)
"""The games ``write_games`` writes: 4 per task type, targets and start places varied (closed receptacles too)."""


def _coord(i: int, j: int) -> str:
    return f"_bar__plus_0{i}_dot_{j:02d}_bar__plus_00_dot_90_bar__minus_0{j % 10}_dot_{i:02d}"


def problem(spec: GameSpec) -> str:
    """The game's PDDL problem over ALFWorld's ``alfred`` domain, goal from ALFWorld's goal library."""
    from alfworld.gen.goal_library import gdict

    receps = {stem: f"{stem}{_coord(i + 1, 1)}" + ("_bar_SinkBasin" if stem == "Sink" else "")
              for i, stem in enumerate(ROOM)}  # fmt: skip
    where = {stem: f"loc_bar_{i + 1}_bar_{i + 2}_bar_1_bar_45" for i, stem in enumerate(ROOM)}
    objects = [(f"{otype}{_coord(k + 1, 5)}", otype, stem) for k, (otype, stem) in enumerate(spec.placements)]
    types = sorted(OBJECTS)
    lines = ["(define (problem plan_trial_compound_oracle)", "(:domain alfred)", "(:objects", "    agent1 - agent"]
    lines += [f"    {oid} - object" for oid, _, _ in objects]
    lines += [f"    {rid} - receptacle" for rid in receps.values()]
    lines += ["    loc_bar_0_bar_0_bar_0_bar_0 - location", *(f"    {loc} - location" for loc in where.values())]
    lines += ["    " + " ".join(f"{t}Type" for t in types) + " - otype"]
    lines += ["    " + " ".join(f"{t}Type" for t, _ in ROOM.values()) + " - rtype", ")", "(:init",
              "    (atLocation agent1 loc_bar_0_bar_0_bar_0_bar_0)"]  # fmt: skip
    for stem, (rtype, openable) in ROOM.items():
        lines.append(f"    (receptacleAtLocation {receps[stem]} {where[stem]})")
        lines.append(f"    (receptacleType {receps[stem]} {rtype}Type)")
        if openable:
            lines.append(f"    (openable {receps[stem]})")
        lines += [f"    (canContain {rtype}Type {t}Type)" for t in types if t != "DeskLamp"]
    for oid, otype, stem in objects:
        props = OBJECTS[otype]
        lines += [f"    (objectType {oid} {otype}Type)", f"    (inReceptacle {oid} {receps[stem]})",
                  f"    (objectAtLocation {oid} {where[stem]})"]  # fmt: skip
        lines += [f"    ({p} {oid})" for p in props if p != "fixed"]
        if "fixed" not in props:
            lines.append(f"    (pickupable {oid})")
    lines.append(")")
    goal = gdict[spec.task_type]["pddl"].format(obj=spec.obj, recep=spec.recep, toggle=spec.toggle)
    return "\n".join(lines) + "\n" + goal.replace("#", "-")


def goal_text(spec: GameSpec) -> str:
    """The task text, from the task type's first template in ALFWorld's goal library."""
    from alfworld.gen.goal_library import gdict

    template = gdict[spec.task_type]["templates"][0]
    return template.format(obj=spec.obj.lower(), recep=spec.recep.lower(), toggle=spec.toggle.lower())


def planner_plan(game_file: Path) -> list[str]:
    """ALFWorld's planner expert's plan for a game (TextWorld's ``policy_commands``, names as ALFWorld shows them)."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

    infos = textworld.EnvInfos(policy_commands=True, won=True)
    env = textworld.start(str(game_file), infos, wrappers=[AlfredDemangler(shuffle=False)])
    try:
        return [str(c) for c in env.reset()["policy_commands"]]
    finally:
        env.close()


def write_games(root: Path, split_dir: str = "valid_unseen", games: Sequence[GameSpec] = GAMES) -> Path:
    """Write ``games`` under ``root/json_2.1.1/<split_dir>/`` as ``alfworld-download`` lays them out; returns root."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    domain = Path(ALFRED_PDDL_PATH).read_text()
    grammar = Path(ALFRED_TWL2_PATH).read_text()
    for n, spec in enumerate(games):
        name = f"{spec.task_type}-{spec.obj}-None-{spec.recep or spec.toggle}-{n:03d}"
        trial = root / "json_2.1.1" / split_dir / name / "trial_T20190000_000000_000001"
        trial.mkdir(parents=True, exist_ok=True)
        params = {"object_target": spec.obj, "parent_target": spec.recep, "toggle_target": spec.toggle,
                  "mrecep_target": "", "object_sliced": False}  # fmt: skip
        (trial / "traj_data.json").write_text(json.dumps({"task_type": spec.task_type, "pddl_params": params}))
        game = {"pddl_domain": domain, "grammar": grammar.replace("UNKNOWN GOAL", goal_text(spec)),
                "pddl_problem": problem(spec), "solvable": True, "walkthrough": []}  # fmt: skip
        game_file = trial / "game.tw-pddl"
        game_file.write_text(json.dumps(game))
        game["walkthrough"] = planner_plan(game_file)
        game_file.write_text(json.dumps(game))
    return root
