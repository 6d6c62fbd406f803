"""WordCraft suite: craft a goal entity by combining entities two at a time.

One id, ``wordcraft``; the config picks the task family with params, e.g.
``{id: wordcraft, params: {depth: 2, distractors: 4}}``, and may point
``recipes`` at its own recipe file (see ``recipes.py``).
"""

from compound.envs.registry import register

register(
    "wordcraft",
    "compound.envs.wordcraft.env:WordcraftEnv",
    description="WordCraft: combine entities two at a time to make a goal (params: depth, distractors, recipes)",
)
