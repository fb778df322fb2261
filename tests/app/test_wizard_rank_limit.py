"""The Quantize wizard's rank field goes as far as the engine takes the rank for the chosen source."""

from __future__ import annotations

import pytest
from flux_dev_sized import flux_dev_sized

from gpu.errors import BadRequestError
from gpu.quantizer import QuantizeConfig


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
