"""A script of ``benchmarks/`` loaded as a module, so tests can call its functions and ``main()``.

Benchmarks are scripts, not a package; a test loads one by path. It is put
in ``sys.modules`` under ``<name>_benchmark`` before it runs, because
dataclasses defined in it look their module up there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``load_benchmark("curator")`` -> ``benchmarks/curator.py`` as the module ``curator_benchmark``."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
