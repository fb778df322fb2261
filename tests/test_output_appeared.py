"""A file put at a quantize run's output name while the run works is the user's: kept, never written over, unless
the run was asked to replace (``--overwrite``); the finished blocks stay, so moving the file and running again only
writes the model file."""

from __future__ import annotations

import pytest
from tiny_flux import QUICK_CALIBRATION

from gpu.atomic import atomic_path
from gpu.errors import OutputAppeared
from gpu.library import ModelLibrary
from gpu.quantizer import QuantizeConfig, QuantizeEvent, quantize_model
from gpu.streaming import engine
from gpu.streaming.parts_folder import parts_dir


def test_a_write_asked_not_to_replace_keeps_a_file_put_there_meanwhile(tmp_path):
    target = tmp_path / "m.safetensors"
    with pytest.raises(OutputAppeared, match=f"{target} appeared while it was being written, and is kept"):
        with atomic_path(target, replace=False) as tmp:
            tmp.write_bytes(b"ours")
            target.write_bytes(b"the user's")
    assert target.read_bytes() == b"the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no scratch folder left
    with atomic_path(tmp_path / "n.safetensors", replace=False) as tmp:
        tmp.write_bytes(b"ours")
    assert (tmp_path / "n.safetensors").read_bytes() == b"ours"
    with atomic_path(target) as tmp:  # the default still replaces
        tmp.write_bytes(b"ours")
    assert target.read_bytes() == b"ours"


def _user_file_appears_before_the_write(monkeypatch, out):
    real = engine.save_checkpoint

    def user_copies_a_file_there(path, tensors, meta, **kw):
        out.write_bytes(b"the user's own model")
        monkeypatch.setattr(engine, "save_checkpoint", real)  # once
        return real(path, tensors, meta, **kw)

    monkeypatch.setattr(engine, "save_checkpoint", user_copies_a_file_there)


def test_a_file_put_at_the_output_during_a_run_is_kept_and_the_run_resumes_once_it_is_moved(tiny_flux, tmp_path,
                                                                                         monkeypatch):  # fmt: skip
    out = tmp_path / "q.safetensors"
    cfg = QuantizeConfig(method="naive", **QUICK_CALIBRATION)
    first: list[QuantizeEvent] = []
    _user_file_appears_before_the_write(monkeypatch, out)
    with pytest.raises(OutputAppeared) as raised:
        quantize_model(tiny_flux, out, cfg, library=ModelLibrary(), replace=False, on_event=first.append)
    assert str(raised.value) == f"{out} appeared while this run worked, and is kept: the quantized model was not " \
                                "written over it"  # fmt: skip
    assert f"run again: the run resumes from the finished blocks in {parts_dir(out)}" in raised.value.hint
    assert out.read_bytes() == b"the user's own model"
    quantized = [e for e in first if e.kind == "layer" and e.error is not None]
    assert quantized and any(parts_dir(out).glob("block-*.safetensors"))

    out.rename(tmp_path / "moved.safetensors")  # as the hint says
    again: list[QuantizeEvent] = []
    _user_file_appears_before_the_write(monkeypatch, out)  # and once more, before this run's write
    with pytest.raises(OutputAppeared):
        quantize_model(tiny_flux, out, cfg, library=ModelLibrary(), replace=False, on_event=again.append)
    assert not [e for e in again if e.kind == "layer" and e.error is not None]  # resumed: nothing quantized again
    assert out.read_bytes() == b"the user's own model"

    # Asked to replace (the CLI's --overwrite), the run writes over it, and ends
    assert quantize_model(tiny_flux, out, cfg, library=ModelLibrary()) == out
    assert out.read_bytes() != b"the user's own model" and not parts_dir(out).exists()
