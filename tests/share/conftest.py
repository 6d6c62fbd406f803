"""Fixtures of the sharing tests (the trajectories they share are made in ``tests/share/trajectories.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private compound cache: this test's own sealing key."""
    monkeypatch.setenv("COMPOUND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
