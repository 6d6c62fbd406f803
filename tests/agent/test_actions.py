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
