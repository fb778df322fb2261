"""A run cancelled (or its wizard closed) while its output's name is chosen is said cancelled at once, but its
naming goes on on its thread (``claim_output_path`` reads and hashes the source) and claims the name a run of these
settings resumes; the wizard lets go of it only once that naming ended. A run named meanwhile (a wizard opened
again, or this one after Back) skipped the held name as another run's and started over under the next one (``-2``),
its parts folder unsaid. It waits for the dropped naming to end, then resumes the name.

The first naming is held on its thread until the test lets it go (``gate``); the later namings run at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import app.quantize_outputs
import app.widgets.quantize_wizard as qw
from app.quantize_outputs import claim_output_path
from app.quantize_worker import QuantizeJob, release_claim
from gpu.paths import resources_dir
from tests.app.gui import demo_run_to_resume

DEMO = resources_dir() / "models" / "demo"


class HeldNaming:
    """``claim_output_path`` whose first call, having claimed its name, waits for ``gate`` before it returns (a
    naming that hashes a multi-GiB source); ``claimed`` lists each call's name as it is claimed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.claimed: list[Path] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        claim = claim_output_path(*args, **kwargs)
        self.claimed.append(claim.target)
        if len(self.claimed) == 1:
            self.gate.wait(60)  # bounded only so that a broken test cannot hang the run for ever
        return claim


@pytest.fixture
def naming(monkeypatch) -> Iterator[HeldNaming]:
    """The wizard's namings, the first one held (``HeldNaming``)."""
    held = HeldNaming()
    monkeypatch.setattr(app.quantize_outputs, "claim_output_path", held)
    yield held
    held.gate.set()  # a naming still held (a failed assert) returns, its thread with it


def _quantize_again(qtbot, wizard: qw.QuantizeWizard, naming: HeldNaming, monkeypatch) -> QuantizeJob:
    """Presses Quantize on ``wizard`` while the first naming still holds its name, then lets that naming end;
    returns the job the run is handed to the worker with (not run: ``_hand_over`` only keeps it)."""
    handed: list[QuantizeJob] = []
    monkeypatch.setattr(wizard.turns, "_hand_over", lambda: handed.append(wizard.run_state.job))
    wizard.next()  # Quantize
    # Either it waits (the name is held), or it was named at once and handed over (under the next free name)
    qtbot.waitUntil(lambda: wizard.run_state.waiting or bool(handed))
    naming.gate.set()
    qtbot.waitUntil(lambda: bool(handed))
    return handed[0]


def _naming_held(qtbot, panel, naming: HeldNaming) -> tuple[qw.QuantizeWizard, Path]:
    """A new wizard of ``panel`` whose run (the demo model, a run of its settings to resume) is being named, its
    naming held with the resumable name claimed; returns the wizard and that name."""
    panel.open_wizard()
    wizard = panel.wizard
    out = demo_run_to_resume(wizard)
    wizard.next()  # Quantize: its naming claims the resumable name, and is held
    qtbot.waitUntil(lambda: naming.claimed == [out])
    return wizard, out


def test_a_wizard_opened_after_one_closed_while_naming_resumes_the_name(qtbot, bare_window, naming, monkeypatch):
    """The wizard closed while its run is named says it ended at once; the one opened next waits for that naming
    ("the wizard you closed"), then resumes the name (the old code named at once: m-2)."""
    panel = bare_window.quantize_panel
    first, out = _naming_held(qtbot, panel, naming)
    first.close()  # its run cancelled while it is named
    assert not first.run_state.running and "Stopped. Nothing was added." in first.run_page.log.toPlainText()
    panel.open_wizard()
    second = panel.wizard
    assert second is not first
    demo_run_to_resume(second)
    job = _quantize_again(qtbot, second, naming, monkeypatch)
    try:
        assert (second.run_state.out_path, job.claim.target) == (out, out)  # the old code: the next name, m-2
        assert "Waiting for the quantize run of the wizard you closed to stop…" in second.run_page.log.toPlainText()
        assert first.run_state.dropped is None  # its naming ended, and let go of its name
    finally:
        release_claim(job.claim)
        second.run_state.set_running(False)


def test_a_run_after_cancel_while_naming_then_back_resumes_the_name(qtbot, bare_window, naming, monkeypatch):
    """Cancel while the run is named, Back, Quantize: the new run waits for the cancelled one's naming, then
    resumes the name (the old code named at once: m-2)."""
    wizard, out = _naming_held(qtbot, bare_window.quantize_panel, naming)
    wizard.cancel()
    # Said at once, and Back is free: only the next run waits for the naming
    assert not wizard.run_state.running and "Stopped. Nothing was added." in wizard.run_page.log.toPlainText()
    wizard.back()
    assert wizard.currentPage() is wizard.calibration_page
    job = _quantize_again(qtbot, wizard, naming, monkeypatch)
    try:
        assert (wizard.run_state.out_path, job.claim.target) == (out, out)  # the old code: the next name, m-2
        log = wizard.run_page.log.toPlainText()
        assert "Waiting for the stopped run to finish choosing its output's name…" in log
        assert wizard.run_state.dropped is None and naming.claimed == [out, out]
    finally:
        release_claim(job.claim)
        wizard.run_state.set_running(False)


def test_a_run_cancelled_while_it_waits_for_a_dropped_naming_is_never_named(qtbot, bare_window, naming):
    """Cancelled again while it waits for the dropped naming: that naming's end lets go of its name and names
    nothing; the app's shutdown does not wait for a naming still held (it may read a huge source)."""
    panel = bare_window.quantize_panel
    wizard, out = _naming_held(qtbot, panel, naming)
    wizard.cancel()
    wizard.back()
    wizard.next()  # waits for the dropped naming
    assert wizard.run_state.waiting and wizard.run_state.dropped is not None
    wizard.cancel()
    assert not wizard.run_state.running and not wizard.run_state.waiting
    panel.shutdown()  # returns with the naming still held on its thread
    assert wizard.run_state.dropped is not None
    with qtbot.waitSignal(wizard.run_state.naming_let_go):
        naming.gate.set()
    assert wizard.run_state.job is None and wizard.run_state.out_path is None and naming.claimed == [out]
    with claim_output_path(out.parent, out.name.removesuffix(".safetensors"), str(DEMO), wizard.config()) as claim:
        assert claim.target == out  # let go of
