"""From a model's messy output to the action sent to the environment.

Small models rarely answer with a bare action: they write ``Action: "Take
the coin."``, bullet it, wrap it in back-ticks, or add a sentence. Two pure
steps turn that into something the environment understands:

1. ``parse_action`` cleans the text: an ``Action:`` line wins, else the first
   non-empty line; labels, list markers, quotes, Markdown and trailing
   punctuation go; a fenced code block is taken whole (joined on one line, so
   a SQL query survives).
2. ``match_action`` compares the result with the actions the environment
   offers, when it offers any:

   - same text ignoring case and spacing -> ``valid`` (the offered spelling);
   - text the environment's own parser takes as it is (``understands``, for
     suites whose offered list is a menu, not a whitelist: ScienceWorld) ->
     ``valid``, sent unchanged: a correct action is always sent as itself;
   - otherwise the closest offered action, if it is close enough -> ``mapped``;
   - nothing close enough -> ``invalid``: the cleaned text goes to the
     environment unchanged and its answer (usually "I don't understand")
     becomes the next observation, which is information for the model.

   Closeness compares *keys*: lower case, punctuation removed, articles
   dropped and common text-game verbs folded to one spelling
   (``VERB_GROUPS``: "walk" -> "go" or "move", "grab"/"pick up" -> "take"),
   applied to both sides alike. Folding follows the offered actions: a verb
   they use keeps its own meaning ("move" is walking in TextWorldExpress but
   putting an object somewhere in ALFWorld and ScienceWorld, which walk with
   "go"). A mapping never changes the verb: when the output starts with a
   verb (one the offered actions use, or one of ``ACTION_VERBS``), only
   actions with that verb are candidates ("open door to hallway" never
   becomes "close door to hallway", even where no "open" is offered). Then, in
   order: equal keys; an offered action whose key appears as whole words in
   the output (the earliest, then the longest, wins: "I will move north, then
   take coin" means "move north"); the best fuzzy score (``similarity``:
   token F1 tolerant of typos), if at least ``threshold``, among actions that
   hold every word of the output (or a near-spelling of it): a mapping may
   complete or respell what the model wrote, never replace a word of it
   ("go to bathroom" never becomes "go to kitchen"). Ties go to the
   action listed first, so the choice is deterministic for a given list.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, Sequence

from compound.types import ActionStatus

DEFAULT_THRESHOLD = 0.6
"""Smallest fuzzy score (``similarity``) that still counts as meaning an offered action.

At 0.6, "north" -> "move north" (0.67), "open north door" -> "open door to
north" (0.86) and "look" -> "look around" (0.67) map, while "move east"
against {"move north", "move west"} (0.5) and "go to the kitchen" against
{"move north", "open door to north"} (0.4) stay invalid.
"""

WORD_THRESHOLD = 0.8
"""Two words count as the same when their difflib ratio reaches this: "nort"
~ "north" (0.89), "door" ~ "doors" (0.89), but "west" !~ "east" (0.5),
"north" !~ "south" (0.6)."""

VERB_GROUPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("go", "move", "walk"), "move"),
    (("take", "pick up", "grab", "get"), "take"),
)
"""Verbs that can mean the same: (members in order of preference, the spelling used when none is offered).

Against offered actions, a member they use as a verb is left alone, and the
others fold into the first member they use (else into the default): with
"move north" offered, "go"/"walk" -> "move"; with "go to kitchen" and "move
apple to fridge" offered, "walk" -> "go" and "move" stays a verb of its own."""

ACTION_VERBS = frozenset(
    "activate chop clean close connect cook cool deactivate dice disconnect drop dunk eat examine flush focus go "
    "heat inventory look mix move open pick pour prepare put read reset slice take teleport toggle use wait wait1".split()
)
"""First words of the suites' actions (TextWorldExpress, ALFWorld, ScienceWorld): an output starting with one
of these (or with any verb the offered actions use) is only ever mapped to an action with the same verb."""

_ARTICLES = frozenset({"the", "a", "an"})
_LABEL = re.compile(r"^\s*(?:next\s+)?(?:action|act|command|answer)\s*\d*\s*[:=\-]\s*", re.IGNORECASE)
_ACTION_LINE = re.compile(r"(?:^|\b)(?:next\s+)?(?:action|act|command)\s*\d*\s*:\s*(.+)", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•>]+|\d+[.)]|\(\d+\))\s*")
_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_EDGE_JUNK = " \t\"'`*_“”‘’.,;:!?"
_NON_WORD = re.compile(r"[^a-z0-9]+")


def parse_action(text: str) -> str:
    """The action a model's output most plausibly names, cleaned; ``""`` when there is none.

    >>> parse_action('Action: "Take the coin."')
    'Take the coin'
    >>> parse_action("I look around.\\nAction: move north")
    'move north'
    >>> parse_action("```sql\\nSELECT name\\nFROM t;\\n```")
    'SELECT name FROM t;'
    """
    fenced = _FENCE.search(text)
    if fenced and fenced.group(1).strip():
        return " ".join(fenced.group(1).split())
    lines = [ln for ln in text.splitlines() if ln.strip()]
    chosen = next((m.group(1) for ln in lines if (m := _ACTION_LINE.search(ln))), None)
    if chosen is None:
        chosen = lines[0] if lines else ""
    return _clean(chosen)


def parse_code(text: str) -> str:
    """A program from a model's reply, newlines kept: the first fenced block, else the reply.

    >>> parse_code("Here:\\n```python\\ndef f(x):\\n    return x\\n```")
    'def f(x):\\n    return x'
    """
    fenced = _FENCE.search(text)
    if fenced and fenced.group(1).strip():
        return fenced.group(1).strip("\n")
    body = text.strip()
    return body.removeprefix("```python").removeprefix("```").strip("\n")


def _clean(line: str) -> str:
    previous = None
    while previous != line:  # labels, markers and quotes can nest: '- Action: "x"'
        previous = line
        line = _LIST_MARKER.sub("", line)
        line = _LABEL.sub("", line)
        line = line.strip(_EDGE_JUNK)
    line = line.split(" | ")[0]  # an echoed slice of the action list: keep the first
    return " ".join(line.split()).strip(_EDGE_JUNK)


def action_key(text: str, folds: Sequence[tuple[str, str]] | None = None) -> str:
    """Lower-case words without punctuation or articles, verbs folded (``folds``, default: ``verb_folds(())``).

    >>> action_key("Pick up the Coin!")
    'take coin'
    >>> action_key("walk to the kitchen", verb_folds(["go to hallway", "move apple to table"]))
    'go to kitchen'
    """
    words = [w for w in _NON_WORD.sub(" ", text.lower()).split() if w not in _ARTICLES]
    key = " ".join(words)
    for phrase, canonical in _DEFAULT_FOLDS if folds is None else folds:
        key = re.sub(rf"\b{re.escape(phrase)}\b", canonical, key)
    return key


def verb_folds(valid_actions: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(phrase, folded spelling) pairs for matching against ``valid_actions`` (see ``VERB_GROUPS``).

    >>> verb_folds(["move north", "take coin"])
    (('go', 'move'), ('walk', 'move'), ('pick up', 'take'), ('grab', 'take'), ('get', 'take'))
    >>> verb_folds(["go to hallway", "move orange to table", "pick up orange"])
    (('walk', 'go'), ('take', 'pick up'), ('grab', 'pick up'), ('get', 'pick up'))
    """
    plain = [" ".join(_NON_WORD.sub(" ", a.lower()).split()) for a in valid_actions]
    folds = []
    for members, default in VERB_GROUPS:
        used = [m for m in members if any(a == m or a.startswith(m + " ") for a in plain)]
        target = used[0] if used else default
        folds.extend((m, target) for m in members if m != target and m not in used)
    return tuple(folds)


_DEFAULT_FOLDS = verb_folds(())


def similarity(a_key: str, b_key: str, *, word_threshold: float = WORD_THRESHOLD) -> float:
    """Token F1 of two keys, in [0, 1], where a word also matches a near-spelling of itself.

    Words are paired one to one: equal words first, then remaining pairs
    whose difflib ratio is at least ``word_threshold`` (typos: "nort" ~
    "north"). Whole-string character similarity is not used on purpose: it
    rates "move west" 0.78 like "move east", and the direction is the point.

    >>> similarity("move nort", "move north"), similarity("move west", "move east")
    (1.0, 0.5)
    """
    a_words, b_words = a_key.split(), b_key.split()
    if not a_words or not b_words:
        return 0.0
    return 2 * paired_words(a_words, b_words, word_threshold) / (len(a_words) + len(b_words))


def paired_words(a_words: Sequence[str], b_words: Sequence[str], word_threshold: float = WORD_THRESHOLD) -> int:
    """How many words of ``a_words`` pair one to one with a word of ``b_words`` (equal first, then near-spellings).

    >>> paired_words("go to bathroom".split(), "go to kitchen".split())
    2
    """
    rest_a, rest_b = list(a_words), list(b_words)
    matched = 0
    for word in a_words:  # exact pairs first, so a typo never steals an exact partner
        if word in rest_b:
            rest_a.remove(word)
            rest_b.remove(word)
            matched += 1
    for word in rest_a:
        ratios = [difflib.SequenceMatcher(None, word, other, autojunk=False).ratio() for other in rest_b]
        if ratios and max(ratios) >= word_threshold:
            del rest_b[ratios.index(max(ratios))]
            matched += 1
    return matched


def match_action(
    parsed: str,
    valid_actions: Sequence[str] | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    understands: Callable[[str], bool] | None = None,
) -> tuple[str, ActionStatus]:
    """``(action to send, status)`` for a parsed output against the offered actions.

    ``understands``: the environment's own test of whether it takes a text as
    it is (``Env.understands``); such text is sent unchanged, never mapped.

    >>> match_action("Move  North", ["move north", "take coin"])
    ('move north', 'valid')
    >>> match_action("go north", ["move north", "take coin"])
    ('move north', 'mapped')
    >>> match_action("dance", ["move north", "take coin"])
    ('dance', 'invalid')
    >>> match_action("SELECT 1", None)
    ('SELECT 1', 'valid')
    >>> match_action("open door to hallway", ["close door to hallway"], understands=lambda a: a.startswith("open"))
    ('open door to hallway', 'valid')
    """
    if not valid_actions:
        return parsed, "valid"
    folded = " ".join(parsed.lower().split())
    for action in valid_actions:
        if " ".join(action.lower().split()) == folded:
            return action, "valid"
    if parsed and understands is not None and understands(parsed):
        return parsed, "valid"
    best = closest_action(parsed, valid_actions, threshold=threshold)
    return (best, "mapped") if best is not None else (parsed, "invalid")


def closest_action(parsed: str, valid_actions: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD) -> str | None:
    """The offered action ``parsed`` most plausibly means, or None if none is close enough.

    When the output starts with a verb (one the offered actions use, or one
    of ``ACTION_VERBS``), only actions with that verb are candidates, so a
    mapping never turns one verb into another; a fuzzy match must hold every
    word of the output (or a near-spelling of it).

    >>> closest_action("open door to hallway", ["close door to hallway", "go to hallway"]) is None
    True
    >>> closest_action("go to bathroom", ["move orange to bathroom", "go to kitchen", "go to bathroom door"])
    'go to bathroom door'
    >>> closest_action("go to bathroom", ["move orange to bathroom", "go to kitchen"]) is None
    True
    """
    folds = verb_folds(valid_actions)
    key = action_key(parsed, folds)
    if not key:
        return None
    keys = [action_key(a, folds) for a in valid_actions]
    verb = key.split()[0]
    if verb in ACTION_VERBS or any(k.split()[:1] == [verb] for k in keys):  # a verb: keep it
        keys = [k if k.split()[:1] == [verb] else "" for k in keys]
    for action, k in zip(valid_actions, keys):
        if k and k == key:
            return action
    padded = f" {key} "
    contained = [
        (padded.find(f" {k} "), -len(k), i) for i, k in enumerate(keys) if k and f" {k} " in padded
    ]
    if contained:
        return valid_actions[min(contained)[2]]
    words = key.split()
    scored = [(similarity(key, k), -i) for i, k in enumerate(keys) if k and paired_words(words, k.split()) == len(words)]
    if not scored:
        return None
    score, neg_index = max(scored)
    return valid_actions[-neg_index] if score >= threshold else None
