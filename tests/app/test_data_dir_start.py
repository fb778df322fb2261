"""The data folder the app is started with, as the user named it: a link that leads nowhere, ``~``, a blank name.

The windowed app has no console: what is wrong with the folder it was given is said in a dialog before any window
opens, and nothing is made where the user did not mean."""

from __future__ import annotations

import os

import pytest

from app.main_window import run_app
from tests.app.gui import accept_dialog_later


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_data_folder_under_a_link_that_leads_nowhere_is_named_and_its_target_never_made(qtbot, tmp_path):
    """``resolve_data_dir`` resolved the folder through the link and made the link's target: on the system disk,
    where the link led to a drive that was not mounted."""
    link, gone = tmp_path / "drive", tmp_path / "unplugged"
    link.symlink_to(gone)
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], link / "data") == 1  # a dialog, then a clean exit: no traceback
    assert len(seen) == 1 and f"{link} is a link to {gone}, which is not there" in seen[0], seen
    assert sorted(tmp_path.iterdir()) == [link]
