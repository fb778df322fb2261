"""The Quantize wizard's rank field goes as far as the engine takes the rank for the chosen source."""

from __future__ import annotations

import pytest
from flux_dev_sized import flux_dev_sized
from PySide6.QtCore import Qt

from gpu.errors import BadRequestError
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig

DEMO = resources_dir() / "models" / "demo"


def test_the_rank_goes_as_far_as_the_engine_takes_it_on_flux_sized_layers(qtbot, window, tmp_path):
    """The rank field stopped at 256 (the paper's largest) on every source, while the engine, and the command
    line's --rank, take up to 1024, and FLUX.1's 3072-wide layers up to 1536: a run the engine takes could not be
    set up in the wizard. The field goes to the engine's one limit for any model, 1024, where the source's layers
    take more, and the run is given it."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    rank = wizard.method_page.rank
    wizard.source_page.use_path(str(flux_dev_sized(tmp_path / "FLUX.1-dev")))
    assert wizard.source_state.rank_limit == 1536  # the engine's own limit for these layers
    rank.setValue(1024)
    assert rank.maximum() == rank.value() == 1024 == wizard.config().rank
    wizard.config().validate()  # the engine takes it
    assert "at most" not in rank.toolTip()  # no smaller limit of the model's to name
    rank.setValue(1025)
    assert rank.value() == 1024
    with pytest.raises(BadRequestError, match="rank 1025 is not possible: use 1 to 1024"):
        QuantizeConfig(rank=1025).validate()
    wizard.close()


def _typed(qtbot, field, text: str) -> int:
    """``text`` typed over a whole-number field of the wizard, then Tab pressed (the focus goes on to the next field):
    the value the field then holds."""
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    field.lineEdit().selectAll()
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Tab)
    assert not field.hasFocus()
    return field.value()


def test_a_number_typed_past_a_fields_limit_is_brought_down_to_the_limit(qtbot, window, tmp_path):
    """A user types the rank FLUX.1's layers take (1536, the README says) into a field of at most 1024, or 200 on the
    demo (at most 128): Qt refused the key that took the number past the limit, and the field kept the digits before
    it, 153 or 20, the rank the run then used, a tenth of what was typed. The number typed is now brought down to
    the limit when typing ends, which the field shows; the alpha points and the calibration prompts alike."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()  # the method page, its fields shown
    wizard.activateWindow()
    qtbot.waitUntil(wizard.isActiveWindow)
    rank = wizard.method_page.rank
    assert wizard.source_page.value() == "demo" and rank.maximum() == 128
    assert _typed(qtbot, rank, "200") == 128 == wizard.config().rank  # was: 20
    assert rank.text() == "128"
    wizard.source_page.use_path(str(flux_dev_sized(tmp_path / "FLUX.1-dev")))
    assert rank.maximum() == 1024
    assert _typed(qtbot, rank, "1536") == 1024 == wizard.config().rank  # was: 153
    assert _typed(qtbot, rank, "96") == 96  # a number within the limit as typed
    alpha_points = wizard.method_page.alpha_points
    assert _typed(qtbot, alpha_points, "150") == alpha_points.maximum() == 101  # was: 15
    wizard.source_page.use_path(str(DEMO))  # the demo again: its 256 calibration prompts
    wizard.next()
    count = wizard.calibration_page.count
    assert count.maximum() == 256
    assert _typed(qtbot, count, "300") == 256  # was: 30
    wizard.close()
