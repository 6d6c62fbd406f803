"""compound: LLM agents that improve during deployment from their own verified successes.

Import the parts you need from their packages (``compound.envs``,
``compound.llm``, ``compound.agent``, ``compound.curation``); only
``compound.distributed`` imports Ray.
"""

__version__ = "0.1.0"
