"""On a machine without a CUDA GPU, the Models panel shows what a model needs of the system memory before it is
loaded: a full-size FLUX.1-dev pipeline (85 GiB of RAM at 32 bits) was shown as "Slow but works", beside an
"Estimated VRAM" of a GPU the machine does not have. Through the real window and engine; the model's weights are
holes in sparse files (nothing loads it: the panel reads headers)."""

from __future__ import annotations

import pytest
import torch
from flux_dev_sized import FLUX_DEV_PARAMS, flux_dev_sized

from app.wording import NBSP


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine plans for its GPU")
def test_a_model_too_big_for_the_ram_is_warned_in_the_panel_before_loading(qtbot, window, tmp_path, monkeypatch):
    import gpu.system_info

    monkeypatch.setattr(gpu.system_info, "installed_ram_bytes", lambda *args, **kwargs: 16 * 2**30)
    controller, panel = window.controller, window.model_panel
    controller.add_model(flux_dev_sized(tmp_path / "FLUX.1-dev"))
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "FLUX.1-dev", timeout=60000)
    info = controller.model_info
    assert info.est_ram_bytes > 4 * sum(FLUX_DEV_PARAMS.values())  # 32-bit weights and working memory
    need = f"{info.est_ram_bytes / 2**30:.1f}{NBSP}GiB"
    assert f"Estimated RAM: {need} (no GPU: VRAM n/a)" in panel.details.text()
    assert "Estimated VRAM" not in panel.details.text()
    assert "more than this machine's 16.0 GiB of RAM" in panel.memory.text()
    assert not controller.memory.fits and "color" in panel.memory.styleSheet()
