"""Does ScienceWorld's own parser take a text as an action? Asked without acting.

ScienceWorld's parser takes far more than its valid-action list shows:
aliases (``examine X``, ``drop X``), referents with their container
(``thermometer in inventory``, ``battery anode``), ``open door to X`` when
the door is already open, ``pour X in Y`` for ``pour X into Y``. Its gold
action sequences use all of these. So the agent asks the parser before it
maps a model's action onto the list (``compound.agent.actions.match_action``):
text the parser matches to an action is sent as it is.

The question goes to the parser object of the loaded world
(``AgentInterface.inputParser.parse``, the call ``step`` makes first), with
the same arguments ``step`` gives it. Parsing builds an action object but
runs nothing; the one state it sets, the pending choice after an ambiguous
match, is cleared again at once. These are the simulator's Scala internals
(scienceworld 1.2); where they cannot be reached the answer is ``None``
("cannot tell") and the agent falls back to matching.
"""

from __future__ import annotations

from typing import Any

from py4j.java_gateway import get_method
from py4j.protocol import Py4JError


def parser_takes(server: Any, text: str) -> bool | None:
    """True if the loaded world's parser matches ``text`` to one action or more; None if it cannot be asked.

    ``server`` is the simulator's ``PythonInterface`` (``ScienceWorldEnv.server``).
    A parser waiting for the number of an ambiguous choice is not asked (False):
    then only the offered numbers mean anything.
    """
    try:
        interface = server.agentInterface().get()
        parser = interface.inputParser()
        if parser.isInAmbiguousState():
            return False
        agent = interface.agent()
        visible = get_method(interface.getAgentVisibleObjects(False), "_2")()
        parsed = parser.parse(
            text, visible, interface.universe(), agent, interface.objMonitor(),
            interface.task().goalSequence(), agent.getContainer().get(),
        )  # fmt: skip
        matched = bool(get_method(parsed, "_1")())
        if parser.isInAmbiguousState():  # several actions matched: the text is understood, the choice undone
            parser.clearAmbiguousState()
            matched = True
        return matched
    except (Py4JError, AttributeError):
        return None

