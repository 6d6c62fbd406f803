"""Which of ScienceWorld's valid actions to offer the agent, and in what order.

ScienceWorld's list of valid action-object combinations is huge: ~100 in the
hallway, ~1,000-1,600 in a furnished room, mostly two-object actions
(``move X to Y``, ``pour X in Y``, ``connect X to Y``) over every pair of
visible objects. Offering all of it buries the handful that matter and costs
prompt tokens. ``offer_actions`` keeps the list bounded and puts the useful
actions first, by tiers:

0. the verbs without objects: ``look around``, ``inventory``, ``task``, ``wait``, ``wait1``;
1. getting around and handling things: ``go to``, ``teleport to``, ``open``,
   ``pick up``, ``put down``, ``activate``, ``deactivate``, ``read``;
2. ``focus on`` and ``look at``: focusing is the task's commitment (a wrong
   focus fails the task), so every focus target is offered, lest a matcher
   map the agent's choice onto a wrong one; looking is how measurements are
   read (stopwatch, inclined plane);
3. two-object actions whose first object the agent holds (``use thermometer
   on ...``, ``move metal pot to stove``): what it picked up, it means to use;
4. the remaining one-object actions: ``close`` (doors start open under
   "easy"), ``look in``, ``mix``, ``disconnect``, ``eat``, ``flush``;
5. two-object actions on objects not held: the long tail of pairs.

Measured on ScienceWorld's gold paths of all 30 task types (first train
variation, "easy"): of 1,034 gold steps, 797 name an action that is in the
valid list verbatim (the rest use aliases such as ``examine X`` or
``X in inventory``, which ScienceWorld's parser takes but never lists); the
offered list has 78% of those among its first 40 and 85% within the cap of
300, and every such ``focus on`` within the first 110. The valid list itself
held a median of ~900 actions per step (max ~5,200).

``reset task`` is never offered: it silently restarts the episode. Within a
tier, actions naming a word of the goal come first, then alphabetical order,
so the list is deterministic. The list is a menu, not a whitelist: ``step``
sends any text to ScienceWorld, whose parser also takes aliases the list
never shows (``examine X``, ``drop X``, ``X in inventory``), and the agent
sends text the parser takes as it is (``SciWorldEnv.understands``) rather
than mapping it onto the menu.

When ScienceWorld answers "Ambiguous request" it waits for the number of the
meaning intended; then the offered actions are exactly those numbers.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

DEFAULT_MAX_ACTIONS = 300
"""Cap on offered actions: tiers 0-3 of a furnished room fit; the long tail of pairs is cut."""

_TIER_BY_VERB: dict[str, int] = {
    "look around": 0,
    "inventory": 0,
    "task": 0,
    "wait": 0,
    "wait1": 0,
    "go to": 1,
    "teleport to": 1,
    "open": 1,
    "close": 4,
    "pick up": 1,
    "put down": 1,
    "activate": 1,
    "deactivate": 1,
    "read": 1,
    "focus on": 2,
    "look at": 2,
    "look in": 4,
    "mix": 4,
    "disconnect": 4,
    "eat": 4,
    "flush": 4,
}
_TWO_OBJECT_VERBS = ("move", "pour", "dunk", "use", "connect")
_NEVER_OFFERED = frozenset({"reset task"})
_OTHER_TIER = 5
_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    "a an the to of in on it its is and or if then first your task be by for with that this "
    "which you are as at from into thing things focus move".split()
)
_AMBIGUOUS = re.compile(r"^\s*Ambiguous request", re.IGNORECASE)
_CHOICE = re.compile(r"^(\d+):", re.MULTILINE)


def verb_of(action: str) -> str:
    """The action's verb phrase (``"pick up"``, ``"look at"``, ``"move"`` ...).

    >>> verb_of("pick up metal pot"), verb_of("look around"), verb_of("pour cup in jug")
    ('pick up', 'look around', 'pour')
    """
    words = action.split()
    two = " ".join(words[:2])
    if two in _TIER_BY_VERB or two in _NEVER_OFFERED:
        return two
    return words[0] if words else ""


def action_tier(action: str, obj_ids: Sequence[int], held: frozenset[int]) -> int | None:
    """The tier of one valid combination (see the module doc); ``None``: never offer it.

    >>> action_tier("use thermometer on water", [7, 9], frozenset({7}))
    3
    >>> action_tier("move sink to kitchen", [3, 4], frozenset({7}))
    5
    >>> action_tier("reset task", [], frozenset()) is None
    True
    """
    verb = verb_of(action)
    if verb in _NEVER_OFFERED:
        return None
    if verb in _TIER_BY_VERB:
        return _TIER_BY_VERB[verb]
    if verb in _TWO_OBJECT_VERBS and obj_ids and int(obj_ids[0]) in held:
        return 3
    return _OTHER_TIER


def goal_words(goal: str) -> frozenset[str]:
    """The content words of a goal, for ranking actions that name them first.

    >>> sorted(goal_words("Your task is to boil water. First, focus on the substance."))
    ['boil', 'substance', 'water']
    """
    return frozenset(w for w in _WORD.findall(goal.lower()) if w not in _STOP_WORDS and len(w) > 2)


def offer_actions(
    combos: Iterable[Mapping[str, Any]],
    *,
    held: Iterable[int] = (),
    goal: str = "",
    max_actions: int = DEFAULT_MAX_ACTIONS,
) -> tuple[str, ...]:
    """The bounded, ranked action list offered to the agent.

    ``combos`` are ScienceWorld's valid combinations (``{"action", "obj_ids",
    ...}``), ``held`` the ids of objects in the agent's inventory, ``goal`` the
    task description.

    >>> offer_actions([
    ...     {"action": "move sink to pot", "obj_ids": [1, 2]},
    ...     {"action": "reset task", "obj_ids": []},
    ...     {"action": "go to kitchen", "obj_ids": [5]},
    ...     {"action": "pour water in pot", "obj_ids": [3, 2]},
    ...     {"action": "look around", "obj_ids": []},
    ... ], held=[3], goal="boil water", max_actions=3)
    ('look around', 'go to kitchen', 'pour water in pot')
    """
    held_ids = frozenset(int(i) for i in held)
    words = goal_words(goal)
    ranked: dict[str, tuple[int, int, str]] = {}
    for combo in combos:
        action = " ".join(str(combo["action"]).split())
        tier = action_tier(action, combo.get("obj_ids") or (), held_ids)
        if tier is None:
            continue
        named = sum(1 for w in set(_WORD.findall(action.lower())) if w in words)
        key = (tier, -named, action)
        if action not in ranked or key < ranked[action]:
            ranked[action] = key
    ordered = sorted(ranked, key=ranked.__getitem__)
    return tuple(ordered[:max_actions])


def ambiguity_choices(observation: str) -> tuple[str, ...] | None:
    """The numbers ScienceWorld waits for after "Ambiguous request", or ``None`` if it waits for none.

    >>> ambiguity_choices("Ambiguous request: Please enter the number ...:\\n0:\\tmove a\\n1:\\tmove b\\n")
    ('0', '1')
    >>> ambiguity_choices("You move the pot to the stove.") is None
    True
    """
    if not _AMBIGUOUS.match(observation):
        return None
    return tuple(dict.fromkeys(_CHOICE.findall(observation))) or None


def held_object_ids(tree: Mapping[str, Any], inventory_ids: Iterable[int]) -> frozenset[int]:
    """Ids of everything inside the inventory node(s) of ScienceWorld's object tree (nested contents too).

    >>> tree = {"uuid": "1", "contents": {"inv": {"uuid": "5", "contents": {
    ...     "pot": {"uuid": "7", "contents": {"water": {"uuid": "8", "contents": {}}}}}}}}
    >>> sorted(held_object_ids(tree, [5]))
    [7, 8]
    """
    wanted = {int(i) for i in inventory_ids}
    held: set[int] = set()

    def collect(node: Mapping[str, Any]) -> None:
        for child in (node.get("contents") or {}).values():
            held.add(int(child["uuid"]))
            collect(child)

    stack = [tree]
    while stack:
        node = stack.pop()
        if int(node.get("uuid", -1)) in wanted:
            collect(node)
            continue
        stack.extend((node.get("contents") or {}).values())
    return frozenset(held)


def compact_text(text: str) -> str:
    """ScienceWorld text without tabs, trailing spaces or blank runs: prompt tokens are the cost.

    >>> compact_text("In it, you see: \\n\\tthe agent\\n\\ta pot \\n\\n\\n")
    'In it, you see:\\n  the agent\\n  a pot'
    """
    lines = []
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip("\t"))
        lines.append("  " * depth + " ".join(line.split()))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
