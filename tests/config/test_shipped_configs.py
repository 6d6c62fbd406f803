"""Every configuration we ship loads and validates (the cluster manifests: tests/test_cluster_manifests.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from compound.config import load_config
from compound.envs import specs

ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + [ROOT / "clusters" / "gpu-vllm.yaml"]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_shipped_run_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.env.id in specs(), f"{path.name} names an unregistered environment {cfg.env.id!r}"


def test_quickstart_is_the_readme_main_job():
    readme = (ROOT / "README.md").read_text()
    assert "make quickstart" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert "configs/quickstart.yaml" in makefile


def test_configuration_reference_is_current():
    from compound.config.reference import reference_markdown

    assert reference_markdown() in (ROOT / "docs" / "configuration.md").read_text(), (
        "docs/configuration.md's reference is stale: paste compound.config.reference.reference_markdown() "
        "over its Reference section"
    )
