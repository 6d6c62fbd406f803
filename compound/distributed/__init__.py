"""The Ray layer: engine actors, agent workers, the curator and its checkpoint, and the run driver.

The only package that imports ray: it wires the rooms below it (agent,
curation, envs, llm, runs) into a run. ``run(cfg, out_dir)`` runs one seed of
a configuration into a run directory; ``run_seeds`` runs ``cfg.seeds`` of
them and summarises them. Names load on first use, so importing a submodule
(the checkpoint format, say) does not start or import the whole driver.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Run": "compound.distributed.driver",
    "RunResult": "compound.distributed.driver",
    "run": "compound.distributed.driver",
    "run_seeds": "compound.distributed.seeds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'compound.distributed' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
