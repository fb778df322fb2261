"""GUI tests run offscreen with a fresh data dir per test (never the user's real one)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(root))
    return root
