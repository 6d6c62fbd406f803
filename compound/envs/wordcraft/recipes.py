"""Recipe graphs for WordCraft: which two entities combine into which.

Two file formats load into one ``RecipeBook``:

- compound's own (``data/recipes.json``, written for this project)::

      {"format": "compound/wordcraft-recipes/1",
       "elements": ["air", "earth", "fire", "water"],
       "entities": {"steam": [["fire", "water"]],
                    "stone": [["lava", "water"], ["air", "lava"]], ...}}

  Each key of ``entities`` is made by any one of its ingredient pairs;
  ``elements`` have no recipe. A pair makes exactly one entity, every
  ingredient must be an element or an entity, and every entity must be
  reachable from the elements; a file breaking a rule is refused with the
  reason.
- Little Alchemy 2 as the WordCraft repository ships it (``alchemy2.json``;
  not bundled, its data has no known licence)::

      {"entities": {"steam": {"recipes": [["fire", "water"], ...]}, ...}}

  Read as WordCraft reads it: recipes that contain their own result are
  dropped, entities without recipes are the roots, and when one pair is
  listed for several entities the last one wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

from compound.envs.base import EnvError

BUILTIN_RECIPES = Path(__file__).parent / "data" / "recipes.json"
FORMAT = "compound/wordcraft-recipes/1"

Pair = tuple[str, str]


def pair(a: str, b: str) -> Pair:
    """The order-free key of a combination."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class RecipeBook:
    """Entities, their roots, and the pair -> result table."""

    source: str
    entities: tuple[str, ...]  # sorted
    roots: frozenset[str]
    results: Mapping[Pair, str]  # pair(a, b) -> entity made
    recipes: Mapping[str, tuple[Pair, ...]] = field(default_factory=dict)  # entity -> its pairs

    @cached_property
    def partners(self) -> dict[str, dict[str, str]]:
        """entity -> {partner: what the two make}, for searching combinations."""
        table: dict[str, dict[str, str]] = {}
        for (a, b), made in self.results.items():
            table.setdefault(a, {})[b] = made
            table.setdefault(b, {})[a] = made
        return table

    def combine(self, a: str, b: str) -> str | None:
        """What ``a`` and ``b`` make, or None."""
        return self.results.get(pair(a, b))

    def depths(self) -> dict[str, int]:
        """Fewest combination layers from the roots to each reachable entity (roots: 0)."""
        depth = {r: 0 for r in self.roots}
        changed = True
        while changed:
            changed = False
            for (a, b), made in self.results.items():
                if a in depth and b in depth:
                    d = max(depth[a], depth[b]) + 1
                    if d < depth.get(made, d + 1):
                        depth[made] = d
                        changed = True
        return depth


def _build(
    source: str, names: Iterable[str], roots: Iterable[str], entries: Iterable[tuple[str, Pair]], *, strict: bool
) -> RecipeBook:
    results: dict[Pair, str] = {}
    for made, key in entries:
        if strict and key in results and results[key] != made:
            raise EnvError(
                f"{source}: {key[0]} + {key[1]} makes both {results[key]!r} and {made!r}; a pair makes one entity"
            )
        results[key] = made
    recipes: dict[str, list[Pair]] = {}
    for key, made in results.items():
        recipes.setdefault(made, []).append(key)
    everything = set(names) | set(recipes) | {e for key in results for e in key}
    by_entity = {e: tuple(sorted(p)) for e, p in recipes.items()}
    return RecipeBook(source, tuple(sorted(everything)), frozenset(roots), results, by_entity)


def _parse_compound(data: Mapping[str, Any], source: str) -> RecipeBook:
    elements, entities = data.get("elements"), data.get("entities")
    if not isinstance(elements, list) or not elements or not isinstance(entities, dict):
        raise EnvError(f"{source}: needs a non-empty 'elements' list and an 'entities' object (format {FORMAT})")
    names = set(elements) | set(entities)
    entries = []
    for made, pairs in entities.items():
        if made in elements:
            raise EnvError(f"{source}: {made!r} is an element and cannot have recipes")
        if not isinstance(pairs, list) or not pairs:
            raise EnvError(f"{source}: entity {made!r} needs a non-empty list of ingredient pairs")
        for ingredients in pairs:
            if not (isinstance(ingredients, list) and len(ingredients) == 2):
                raise EnvError(f"{source}: recipe {ingredients!r} of {made!r} must list exactly two ingredients")
            unknown = [i for i in ingredients if i not in names]
            if unknown:
                raise EnvError(f"{source}: recipe of {made!r} uses unknown ingredient(s) {unknown}; define them first")
            if made in ingredients:
                raise EnvError(f"{source}: recipe of {made!r} contains {made!r} itself")
            entries.append((made, pair(*ingredients)))
    book = _build(source, names, elements, entries, strict=True)
    unreachable = sorted(set(entities) - set(book.depths()))
    if unreachable:
        raise EnvError(f"{source}: cannot be made from the elements: {', '.join(unreachable[:10])}")
    return book


def _parse_alchemy2(data: Mapping[str, Any], source: str) -> RecipeBook:
    entities = data.get("entities")
    if not isinstance(entities, dict) or not entities:
        raise EnvError(f"{source}: an alchemy2.json file needs an 'entities' object")
    entries = []
    for made, spec in entities.items():
        for ingredients in (spec or {}).get("recipes", []) if isinstance(spec, dict) else []:
            if isinstance(ingredients, list) and len(ingredients) == 2 and made not in ingredients:
                entries.append((made, pair(str(ingredients[0]), str(ingredients[1]))))
    has_recipe = {made for made, _ in entries}
    roots = [e for e in entities if e not in has_recipe]  # WordCraft: entities without recipes
    return _build(source, entities, roots, entries, strict=False)


def load_recipes(path: str | Path | None = None) -> RecipeBook:
    """The bundled graph (``path=None``), or a user's file in either format above."""
    file = Path(path).expanduser() if path else BUILTIN_RECIPES
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvError(f"cannot read recipe file {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvError(f"recipe file {file} must hold a JSON object")
    if "elements" in data:
        return _parse_compound(data, str(file))
    return _parse_alchemy2(data, str(file))
