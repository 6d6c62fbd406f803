"""Oracles: each suite's verifier proven by its own package's gold solutions and negative controls.

``play`` plays a case verbatim, through the agent loop and its controls;
``text_games`` and ``puzzles`` build the cases of each suite from its
package's gold solutions; ``alfworld_games`` writes ALFWorld games from the
package's own domain, grammar and goal library; ``suites`` says which tasks
each suite plays (a CI sample, or the full set of ``benchmarks/oracles.py``).
"""

from compound.oracles.play import Case, CaseResult, Control, check_case
from compound.oracles.suites import SUITES, OracleRunner, units

__all__ = ["Case", "CaseResult", "Control", "OracleRunner", "SUITES", "check_case", "units"]
