"""SVDQ checkpoint format v1: round trip, and a clear error for every kind of malformed file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gpu.checkpoint.format import load_checkpoint, read_checkpoint_meta
from gpu.checkpoint.skeleton import build_skeleton, expected_tensors, load_quantized_transformer
from gpu.errors import CheckpointError


def _rewrite(src: Path, dst: Path, edit_meta=None, edit_tensors=None) -> Path:
    """Re-save ``src`` with edited metadata/tensors through the real writer (valid checksum)."""
    from gpu.checkpoint.format import CheckpointMeta, save_checkpoint

    meta, tensors = load_checkpoint(src)
    data = json.loads(meta.to_json())
    if edit_meta:
        edit_meta(data)
    if edit_tensors:
        edit_tensors(tensors)
    known = CheckpointMeta.__dataclass_fields__
    return save_checkpoint(dst, tensors, CheckpointMeta(**{k: v for k, v in data.items() if k in known}))


def _patch_meta_raw(src: Path, dst: Path, edit) -> Path:
    """Edit the metadata JSON in the header directly (bypassing the writer)."""

    def edit_header(header: dict) -> None:
        data = json.loads(header["__metadata__"]["svdq"])
        edit(data)
        header["__metadata__"]["svdq"] = json.dumps(data)

    return _patch_header_raw(src, dst, edit_header)


def _patch_header_raw(src: Path, dst: Path, edit) -> Path:
    """Edit the safetensors header (a dict) directly; the data section and its checksum stay as they were."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return dst


def test_save_load_gives_identical_outputs(tiny_flux_int4):
    model, meta = load_quantized_transformer(tiny_flux_int4)
    again, _ = load_quantized_transformer(tiny_flux_int4)
    cfg = model.config
    torch.manual_seed(0)
    inputs = dict(
        hidden_states=torch.randn(1, 16, cfg.in_channels, dtype=torch.bfloat16),
        encoder_hidden_states=torch.randn(1, 8, cfg.joint_attention_dim, dtype=torch.bfloat16),
        pooled_projections=torch.randn(1, cfg.pooled_projection_dim, dtype=torch.bfloat16),
        timestep=torch.tensor([0.5]),
        img_ids=torch.zeros(16, 3),
        txt_ids=torch.zeros(8, 3),
    )
    with torch.no_grad():
        a = model(**inputs).sample
        b = again(**inputs).sample
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert meta.quantization == {"method": "svdquant", "precision": "int4", "rank": 32}
    assert len(meta.sha256) == 64


def test_metadata_describes_every_layer(tiny_flux_int4):
    meta = read_checkpoint_meta(tiny_flux_int4)
    assert meta.format_version == 1 and meta.architecture == "flux"
    kinds = {e["kind"] for e in meta.layers.values()}
    assert kinds == {"W4A4", "W4A16"}
    mod = [n for n, e in meta.layers.items() if e["kind"] == "W4A16"]
    assert all(n.endswith(("norm1.linear", "norm1_context.linear", "norm.linear")) for n in mod)
    assert "x_embedder" not in meta.layers and "proj_out" not in meta.layers
    assert meta.base_model["name"] and meta.base_model["defaults"]["width"] == 64
    skeleton = build_skeleton(meta)
    assert set(expected_tensors(skeleton)) == set(load_checkpoint(tiny_flux_int4)[1])


@pytest.mark.parametrize(
    "case,message",
    [
        ("version", "format version 2 is not supported"),
        ("architecture", "unsupported architecture 'sdxl'"),
        ("missing", "missing tensors: proj_out.bias"),
        ("extra", "unexpected tensors: stowaway"),
        ("shape", r"has shape \[7\], expected \[64\]"),
        ("truncated", "truncated"),
        ("checksum", "checksum mismatch"),
        ("not_svdq", "not_svdq.safetensors: a LoRA, not a model"),  # named for what it is
        ("garbage", "not a safetensors file, or a damaged.incomplete copy"),
        ("bad_json", "header is not valid JSON"),
    ],
)
def test_malformed_files_give_clear_errors(tiny_flux_int4, tmp_path, case, message):
    src = Path(tiny_flux_int4)
    bad = tmp_path / f"{case}.safetensors"
    if case == "version":
        _patch_meta_raw(src, bad, lambda d: d.update(format_version=2))
    elif case == "architecture":
        _patch_meta_raw(src, bad, lambda d: d.update(architecture="sdxl"))
    elif case == "missing":
        _rewrite(src, bad, edit_tensors=lambda t: t.pop("proj_out.bias"))
    elif case == "extra":
        _rewrite(src, bad, edit_tensors=lambda t: t.update(stowaway=torch.zeros(3)))
    elif case == "shape":
        _rewrite(src, bad, edit_tensors=lambda t: t.update({"proj_out.bias": torch.zeros(7, dtype=torch.bfloat16)}))
    elif case == "truncated":
        bad.write_bytes(src.read_bytes()[:-1000])
    elif case == "checksum":
        raw = bytearray(src.read_bytes())
        raw[-10] ^= 0xFF
        bad.write_bytes(bytes(raw))
    elif case == "not_svdq":
        save_file({"lora_A": torch.zeros(2, 2)}, str(bad))
    elif case == "garbage":
        bad.write_bytes(b"\x00\x01not a model")
    elif case == "bad_json":
        bad.write_bytes(struct.pack("<Q", 10) + b"{not json}" + b"\0" * 32)
    with pytest.raises(CheckpointError, match=message):
        load_quantized_transformer(bad)


def _first_layer_without_method(data: dict) -> None:
    del data["layers"][sorted(data["layers"])[0]]["method"]


def _entry_without_offsets(header: dict) -> None:
    del header["proj_out.bias"]["data_offsets"]


@pytest.mark.parametrize(
    "edit_header,edit_meta,message",
    [
        (lambda h: h.update(__metadata__="x"), None, "__metadata__ is not a table of texts"),
        (_entry_without_offsets, None, "entry for tensor 'proj_out.bias' is malformed"),
        (lambda h: h["__metadata__"].update(svdq="[]"), None, "the SVDQ metadata is not a JSON object"),
        (None, lambda d: d.update(base_model="x"), "base_model is not a JSON object"),
        (None, lambda d: d.update(dtype="evil"), "storage dtype 'evil' is not one of"),
        (None, lambda d: d.pop("sha256"), "has no checksum"),
        (None, _first_layer_without_method, "metadata of layer .* is invalid .*'method'"),
        (None, lambda d: d["model_config"].update(num_layers="abc"), "model_config .* does not describe a buildable"),
    ],
)  # fmt: skip
def test_damaged_headers_and_metadata_are_named(tiny_flux_int4, tmp_path, edit_header, edit_meta, message):
    """Each of these used to fail deep in the loader (AttributeError, KeyError, TypeError traceback)."""
    bad = tmp_path / "damaged.safetensors"
    if edit_header:
        _patch_header_raw(Path(tiny_flux_int4), bad, edit_header)
    else:
        _patch_meta_raw(Path(tiny_flux_int4), bad, edit_meta)
    with pytest.raises(CheckpointError, match=message):
        load_quantized_transformer(bad)


def test_writer_is_atomic_and_leaves_no_temp_files(tiny_flux_int4, tmp_path):
    out = tmp_path / "copy.safetensors"
    _rewrite(Path(tiny_flux_int4), out)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.safetensors"]
    assert load_checkpoint(out)[0].sha256 == read_checkpoint_meta(out).sha256
