"""TextWorldExpress suite: eight fast text games, registered as ``twx/<game>``.

Importing this only registers the ids; the JVM starts when an env is made.
"""

from compound.envs.registry import register

_ENTRY_POINT = "compound.envs.textworld_express.env:TWXEnv"

_GAMES = {
    "coin": "explore rooms (opening doors) to find a coin and take it",
    "cookingworld": "find a recipe's ingredients, prepare them as it says, then eat the meal",
    "twc": "tidy up: put misplaced objects in their usual places (TextWorld Commonsense)",
    "mapreader": "read a map, fetch the coin from a named room and bring it back to the box",
    "arithmetic": "solve a math problem, then put the item with that quantity in the box",
    "sorting": "put objects in the box in order of increasing quantity (mixed units)",
    "simonsays": "do exactly the actions that Simon says, in order",
    "peckingorder": "read the instructions book and follow it, repeatedly, until done",
}

for _game, _description in _GAMES.items():
    register(f"twx/{_game}", _ENTRY_POINT, description=f"TextWorldExpress: {_description}", kwargs={"game": _game})
