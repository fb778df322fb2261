"""The Quantize wizard on a run that runs out of GPU memory or RAM: the engine's quantize words, on the page and in
the dialog, and "Go back to change the settings" only where a setting of the wizard helps (the RAM budget, for the
block inputs kept in RAM). It showed a generation job's advice: a smaller image size, fewer images per batch."""

from __future__ import annotations

import torch

from tests.app.gui import accept_dialog_later, small_run

GENERATION_WORDS = ("generating", "smaller size", "images per batch", "4-bit model")


def _failed_run(qtbot, window) -> tuple[str, str]:
    """Runs the wizard's small demo run to its failure -> (the run page's error, the dialog's text)."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=120000):
        wizard.next()
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=10000)
    text = wizard.run_page.error.text()
    wizard.close()
    return text, seen[0]


def test_the_gpu_running_out_is_said_for_quantizing_with_no_setting_to_go_back_to(qtbot, window, monkeypatch):
    import gpu.quantizer.in_memory as in_memory

    def oom(*_a, **_k):  # T5-XXL on an 8 GB card, under the default budget of 14 GiB (no cap there)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 MiB. GPU 0 has a total capacity "
                                     "of 7.63 GiB of which 20.00 MiB is free.")  # fmt: skip

    monkeypatch.setattr(in_memory, "encode_prompts", oom)
    page, dialog = _failed_run(qtbot, window)
    assert page.startswith("The run failed: the GPU ran out of memory while encoding the calibration prompts")
    assert "Close other programs that use the GPU" in page and "Go back" not in page
    assert dialog.startswith("Out of memory\n")
    assert not any(w in page + dialog for w in GENERATION_WORDS)


def test_the_ram_running_out_among_the_block_inputs_sends_back_to_the_ram_budget(qtbot, window, monkeypatch):
    import gpu.streaming.block_loop as block_loop

    def no_ram(*_a, **_k):
        raise MemoryError()

    monkeypatch.setattr(block_loop, "quantize_layers", no_ram)
    page, dialog = _failed_run(qtbot, window)
    assert page.startswith("The run failed: the computer ran out of memory (RAM) while quantizing block 1 of 6")
    assert "smaller RAM budget" in page and page.endswith("Go back to change the settings.")
    assert not any(w in page + dialog for w in GENERATION_WORDS)
    assert "--" not in page + dialog  # no command-line option in the wizard's words
