"""The LoRA panel judges every listed LoRA against the selected model at each model picked (``LoraState.use_model``):
judged file by file on the Qt thread, 0.15 ms each that did not fit, 2,000 LoRAs listed froze the window for 0.3 s
at each pick. The files of one layout (a trainer's LoRAs for one model, whatever their rank) are one verdict, reached
once per model (``gpu.lora.fit.ModelFit``), and each row says what it said before, word for word."""

from __future__ import annotations

from pathlib import Path

import pytest
from header_files import header_only
from lora_files import flux_dev_lora

import gpu.lora.fit
from app.lora_header import read_file
from app.lora_state import LoraState
from gpu.lora.fit import known_misfit
from gpu.lora.layer_files import file_layers
from gpu.model_files import inspect_model_path

_PROJ = "lora_unet_double_blocks_0_img_attn_proj"  # the demo transformer's first image attention output, 256 wide
_CLIP = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"  # CLIP-L's (768 wide; the demo's CLIP: 128)


def _demo_lora(path: Path, rank: int, clip: bool = False) -> Path:
    """A kohya LoRA of the demo transformer (its header over zero data); ``clip``: with a part for CLIP-L, which the
    demo's CLIP cannot take."""
    tensors = {f"{_PROJ}.lora_down.weight": ("F32", (rank, 256)), f"{_PROJ}.lora_up.weight": ("F32", (256, rank))}
    if clip:
        tensors |= {f"{_CLIP}.lora_down.weight": ("F32", (rank, 768)), f"{_CLIP}.lora_up.weight": ("F32", (768, rank))}
    return header_only(path, tensors)


@pytest.fixture
def judged(monkeypatch) -> list[int]:
    """Each judging of a LoRA's targets against a model (``gpu.lora.fit.misfit``, the rule itself, still run)."""
    calls: list[int] = []
    real = gpu.lora.fit.misfit

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gpu.lora.fit, "misfit", counted)
    return calls


def test_a_model_pick_judges_each_layout_of_2000_loras_once_and_says_the_same(qapp, demo_model, tmp_path, judged):
    files = [flux_dev_lora(tmp_path / "dev 1.safetensors", rank=1), flux_dev_lora(tmp_path / "dev 2.safetensors", 2),
             _demo_lora(tmp_path / "fits 4.safetensors", 4), _demo_lora(tmp_path / "fits 8.safetensors", 8),
             _demo_lora(tmp_path / "clip 4.safetensors", 4, clip=True),
             _demo_lora(tmp_path / "clip 8.safetensors", 8, clip=True)]  # fmt: skip
    reads = [read_file(f) for f in files]  # each file read apart, as a folder's scan reads them
    # a layout is one tuple of targets, whatever the rank
    assert [r.header.targets for r in reads[::2]] == [r.header.targets for r in reads[1::2]]
    assert len({id(r.header.targets) for r in reads}) == 3
    state = LoraState()
    rows = [(tmp_path / "loras" / f"style {i:04d}.safetensors", reads[i % 6]) for i in range(2000)]
    state.add_reads([(path, read._replace(resolved=path)) for path, read in rows])
    layers = file_layers(inspect_model_path(demo_model), None)

    judged.clear()
    state.use_model("demo", layers)  # a model picked, described: every row judged
    assert len(judged) == 3  # was 2,000: each row's file on its own
    said = {e.misfit for e in state.entries}
    assert len(said) == 3 and "" in said  # the LoRAs of the demo's widths fit; the others say why not
    judged.clear()
    for e in state.entries:  # word for word what the rule says of each file on its own
        wrong = known_misfit(e.path.name, e.targets, layers, e.strength, e.text_strength)
        assert e.misfit == ("" if wrong is None else f"does not fit the model 'demo': {wrong.text}")

    clip = state.entries[4]
    state.set_text_strength(clip, 0.0)  # its CLIP part left out: judged anew, it fits
    assert clip.misfit == ""
    judged.clear()
    state.set_text_strength(state.entries[10], 0.0)  # another of that layout at those strengths: already known
    assert state.entries[10].misfit == "" and judged == []

    # Another model (its text encoders not known): judged anew, once a layout, by its own layers
    state.use_model("transformer only", {"transformer": layers["transformer"]})
    assert len(judged) == 3  # at any text strength, only the transformer part is judged
    assert state.entries[5].misfit == "" and state.entries[0].misfit.startswith("does not fit the model 'transformer")
