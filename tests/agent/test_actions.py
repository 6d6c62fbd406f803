"""Parsing and mapping messy model outputs to offered actions (pure functions)."""

from __future__ import annotations

import pytest

from compound.agent.actions import action_key, closest_action, match_action, parse_action, similarity

TWX_ACTIONS = (
    "close door to north",
    "inventory",
    "look around",
    "move north",
    "move west",
    "open door to north",
    "take coin",
)


@pytest.mark.parametrize(
    "output, parsed",
    [
        ("move north", "move north"),
        ("Action: move north", "move north"),
        ("action:move north", "move north"),
        ("Next action: open door to north.", "open door to north"),
        ('"take coin"', "take coin"),
        ("'take coin'.", "take coin"),
        ("`inventory`", "inventory"),
        ("**look around**", "look around"),
        ("> move west", "move west"),
        ("1. move west", "move west"),
        ("- Action: \"take coin\"", "take coin"),
        ("  move   north  \n and then more", "move north"),
        ("\n\nmove north\n", "move north"),
        ("I should explore.\nAction: move north\nObs: ...", "move north"),
        ("Thought: the coin is here. Action: take coin", "take coin"),
        ("move north | take coin", "move north"),
        ("Take the coin!", "Take the coin"),
        ("```sql\nSELECT name\nFROM users;\n```", "SELECT name FROM users;"),
        ("", ""),
        ("   \n  ", ""),
    ],
)
def test_parse_action(output: str, parsed: str) -> None:
    assert parse_action(output) == parsed


@pytest.mark.parametrize(
    "output, action, status",
    [
        # exact up to case and spacing
        ("move north", "move north", "valid"),
        ("Move  North", "move north", "valid"),
        ("Action: TAKE COIN.", "take coin", "valid"),
        ("`inventory`", "inventory", "valid"),
        # close enough to one offered action
        ("go north", "move north", "mapped"),
        ("walk west", "move west", "mapped"),
        ("north", "move north", "mapped"),
        ("Take the coin!", "take coin", "mapped"),
        ("pick up the coin", "take coin", "mapped"),
        ("grab coin", "take coin", "mapped"),
        ("check inventory", "inventory", "mapped"),
        ("Open the door to the north.", "open door to north", "mapped"),
        ("open north door", "open door to north", "mapped"),
        ("look", "look around", "mapped"),
        ("I will move north, then take coin", "move north", "mapped"),
        ("Let's take coin now", "take coin", "mapped"),
        ("move nort", "move north", "mapped"),
        # nothing close enough: sent as written
        ("move east", "move east", "invalid"),  # not offered; "move west" is no substitute
        ("go south", "go south", "invalid"),
        ("To the East, you see the pantry.", "To the East, you see the pantry", "invalid"),
        ("go to the kitchen", "go to the kitchen", "invalid"),
        ("dance", "dance", "invalid"),
        ("n", "n", "invalid"),
        ("I don't know what to do", "I don't know what to do", "invalid"),
        ("", "", "invalid"),
    ],
)
def test_match_action_on_messy_outputs(output: str, action: str, status: str) -> None:
    assert match_action(parse_action(output), TWX_ACTIONS) == (action, status)


@pytest.mark.parametrize("offered", [None, ()])
def test_without_offered_actions_the_parsed_text_is_sent_as_valid(offered) -> None:
    assert match_action("SELECT * FROM t", offered) == ("SELECT * FROM t", "valid")


def test_ties_go_to_the_action_listed_first() -> None:
    # "move" is equally close to both; the list order decides, so reordering flips it.
    assert closest_action("move", ["move east", "move west"]) == "move east"
    assert closest_action("move", ["move west", "move east"]) == "move west"


def test_earliest_contained_action_wins_then_longest() -> None:
    offered = ["take coin", "open door", "open door to north"]
    assert closest_action("open door to north and take coin", offered) == "open door to north"
    assert closest_action("take coin, then open door", offered) == "take coin"


def test_threshold_controls_mapping() -> None:
    assert match_action("north", TWX_ACTIONS, threshold=0.9) == ("north", "invalid")
    assert match_action("north", TWX_ACTIONS, threshold=0.5) == ("move north", "mapped")


def test_key_and_similarity() -> None:
    assert action_key("Pick up THE coin.") == "take coin"
    assert action_key("go to desk 1") == "move to desk 1"
    assert similarity("take coin", "take coin") == 1.0
    assert similarity("", "take coin") == 0.0
    assert similarity("move nort", "move north") == 1.0  # a typo still pairs the word
    assert similarity("move west", "move east") == 0.5  # a different direction does not
    assert similarity("take coin coin", "take coin") == pytest.approx(0.8)


SCIWORLD_OFFERED = (  # doors start open under "easy", so only "close" is offered for them
    "close door to hallway",
    "go to bathroom door",
    "go to hallway",
    "move orange to bathroom",
    "pick up orange",
    "inventory",
    "use thermometer on orange",
    "disconnect sodium chloride",
)
ALFWORLD_OFFERED = ("go to countertop 1", "move apple 1 to countertop 1", "take apple 1 from countertop 1", "look")


@pytest.mark.parametrize(
    "output, offered",
    [
        ("open door to hallway", SCIWORLD_OFFERED),  # not "close door to hallway"
        ("go to bathroom", ("move orange to bathroom", "go to kitchen")),  # not "move orange to bathroom"
        ("drop sodium chloride", SCIWORLD_OFFERED),  # not "disconnect sodium chloride"
        ("examine orange", SCIWORLD_OFFERED),  # not "pick up orange"
        ("read recipe in inventory", SCIWORLD_OFFERED),  # not "inventory"
        ("use thermometer in inventory on orange in inventory", ("inventory", "look around")),
        ("open fridge 1", ALFWORLD_OFFERED),
    ],
)
def test_a_mapping_never_changes_the_verb(output: str, offered: tuple[str, ...]) -> None:
    action, status = match_action(output, offered)
    assert (action, status) == (output, "invalid")


@pytest.mark.parametrize(
    "output, offered, expected",
    [
        ("walk to countertop 1", ALFWORLD_OFFERED, "go to countertop 1"),  # walking is "go" where "move" puts
        ("go north", TWX_ACTIONS, "move north"),  # and "move" where it walks
        ("grab orange", SCIWORLD_OFFERED, "pick up orange"),
        ("pick up the apple 1 from countertop 1", ALFWORLD_OFFERED, "take apple 1 from countertop 1"),
        ("use thermometer on the orange", SCIWORLD_OFFERED, "use thermometer on orange"),
    ],
)
def test_verbs_fold_into_the_ones_the_offered_actions_use(output: str, offered: tuple[str, ...], expected: str) -> None:
    assert match_action(output, offered) == (expected, "mapped")


def test_text_the_environment_understands_is_sent_as_itself() -> None:
    understood = {"open door to hallway", "look at orange in inventory"}.__contains__
    for output in ("open door to hallway", "look at orange in inventory"):
        assert match_action(output, SCIWORLD_OFFERED, understands=understood) == (output, "valid")
    # the offered spelling still wins an exact match, and what it does not understand is still mapped
    assert match_action("Go To Hallway", SCIWORLD_OFFERED, understands=understood) == ("go to hallway", "valid")
    assert match_action("grab orange", SCIWORLD_OFFERED, understands=understood) == ("pick up orange", "mapped")
