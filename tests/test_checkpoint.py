"""SVDQ checkpoint format v1: round trip, and a clear error for every kind of malformed file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path

import pytest
import torch
from header_files import edit_header, edit_svdq_meta
from safetensors.torch import save_file

from gpu.checkpoint.format import load_checkpoint, read_checkpoint_meta
from gpu.checkpoint.skeleton import build_skeleton, expected_tensors, load_quantized_transformer
from gpu.errors import CheckpointError, with_hint


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
        edit_svdq_meta(src, bad, lambda d: d.update(format_version=2))
    elif case == "architecture":
        edit_svdq_meta(src, bad, lambda d: d.update(architecture="sdxl"))
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


def _first_layer_alpha_text(data: dict) -> None:
    data["layers"][sorted(data["layers"])[0]]["alpha"] = "x"


def _entry_without_offsets(header: dict) -> None:
    del header["proj_out.bias"]["data_offsets"]


@pytest.mark.parametrize(
    "header_change,meta_change,message",
    [
        (lambda h: h.update(__metadata__="x"), None, "__metadata__ is not a table of texts"),
        (_entry_without_offsets, None, "entry for tensor 'proj_out.bias' is malformed"),
        (lambda h: h["__metadata__"].update(svdq="[]"), None, "the SVDQ metadata is not a JSON object"),
        (lambda h: h["__metadata__"].update(svdq="{x"), None, "the SVDQ metadata is not valid JSON"),
        (None, lambda d: d.update(format="other"), "unknown checkpoint format 'other'"),
        (None, lambda d: d.update(architecture="sdxl"), "unsupported architecture 'sdxl'"),
        (None, lambda d: d.pop("architecture"), "unsupported architecture 'None'"),  # damage, not a newer model
        (None, lambda d: d.update(model_class="UNet"), "model class 'UNet' does not match architecture 'flux'"),
        (None, lambda d: d.pop("layers"), "incomplete SVDQ metadata"),
        (None, lambda d: d.update(base_model="x"), "base_model is not a JSON object"),
        (None, lambda d: d.update(dtype="evil"), "storage dtype 'evil' is not one of"),
        (None, lambda d: d.pop("sha256"), "has no checksum"),
        (None, _first_layer_without_method, "metadata of layer .* is invalid .*'method'"),
        (None, lambda d: d["model_config"].update(num_layers="abc"), "model_config .* does not describe a buildable"),
        # a ZeroDivisionError traceback from diffusers' attention (inspect, generate, the models folder's scan)
        (None, lambda d: d["model_config"].update(attention_head_dim=0), "model_config .* does not describe a buil"),
        # each read where the check let it through: a ValueError or TypeError traceback from the library (which
        # stopped the app's model list and every command), generate or inspect
        (None, lambda d: d["base_model"].update(defaults="x"), r"base_model is invalid \(defaults is \"x\", not a JSO"),
        (None, lambda d: d["base_model"].update(path=5), r"base_model is invalid \(path is 5, not a text or null\)"),
        (None, _first_layer_alpha_text, r"metadata of layer .* is invalid \(alpha is \"x\", not a number or null\)"),
        (None, lambda d: d["calibration"].update(mean_layer_error="x"), "calibration is invalid .*mean_layer_error"),
        # the scheduler it was made with (optional: {} or absent in older files), a record of it malformed
        (None, lambda d: d.update(scheduler="x"), "the SVDQ metadata's scheduler is not a JSON object"),
        (None, lambda d: d.update(scheduler={"class": 5, "config": {}}), r"scheduler is invalid \(class is 5, not a t"),
        (None, lambda d: d.update(scheduler={"class": "A", "config": []}), r"scheduler is invalid \(config is \[\], n"),
        (None, lambda d: d.update(scheduler={"class": "A"}), r"scheduler is invalid \(a recorded scheduler needs both"),
    ],
)  # fmt: skip
def test_damaged_headers_and_metadata_are_named(tiny_flux_int4, tmp_path, header_change, meta_change, message):
    """Each of these used to fail deep in the loader (AttributeError, KeyError, TypeError traceback)."""
    bad = tmp_path / "damaged.safetensors"
    if header_change:
        edit_header(Path(tiny_flux_int4), bad, header_change)
    else:
        edit_svdq_meta(Path(tiny_flux_int4), bad, meta_change)
    with pytest.raises(CheckpointError, match=message) as refused:
        load_quantized_transformer(bad)
    if "unsupported architecture 'sdxl'" in message:  # a model a newer version runs: no copy of the file helps
        assert refused.value.hint == "update Nibble Studio, or re-quantize the model with this version"
    elif meta_change or "SVDQ metadata" in message:  # a file whose header is not what this app writes: made again
        assert refused.value.hint == "re-quantize the model, or copy or download the file again"


def test_writer_is_atomic_and_leaves_no_temp_files(tiny_flux_int4, tmp_path):
    out = tmp_path / "copy.safetensors"
    _rewrite(Path(tiny_flux_int4), out)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.safetensors"]
    assert load_checkpoint(out)[0].sha256 == read_checkpoint_meta(out).sha256


def _mapped(path: Path) -> bool:
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    return str(path) in maps.read_text()


def test_loaded_tensors_are_fresh_memory_not_a_mapping_of_the_file(tiny_flux_int4, tmp_path):
    """The tensors were views of the memory-mapped file, which a model kept on the CPU held for as long as it
    was loaded: Windows refuses to delete, replace or rename a mapped file, so the user could not remove or
    update the model in the library (or in Explorer) until the app quit. Every dtype a checkpoint may hold
    comes back equal to what was saved, through the uint8 view bf16 and fp8 need."""
    from gpu.checkpoint.format import save_checkpoint

    saved = {
        "bf16": torch.randn(3, 5).bfloat16(), "fp8": torch.randn(4, 2).to(torch.float8_e4m3fn),
        "f32": torch.randn(7), "u8": torch.arange(6, dtype=torch.uint8).reshape(2, 3), "i64": torch.tensor([-2, 9]),
        "flag": torch.tensor([True, False, True]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
    }  # fmt: skip
    path = save_checkpoint(tmp_path / "every dtype.safetensors", saved, read_checkpoint_meta(tiny_flux_int4))
    _, tensors = load_checkpoint(path)
    assert not _mapped(path)
    assert tensors.keys() == saved.keys()
    for key, t in saved.items():
        as_bytes = tensors[key].reshape(-1).view(torch.uint8)
        assert tensors[key].shape == t.shape and torch.equal(as_bytes, t.reshape(-1).view(torch.uint8)), key
    model, _ = load_quantized_transformer(tiny_flux_int4)  # a loaded model, its weights on the CPU
    assert not _mapped(Path(tiny_flux_int4)) and model.proj_out.bias.device.type == "cpu"


def test_a_file_renamed_over_the_path_midway_is_never_mixed_in(tiny_flux_int4, tmp_path, monkeypatch):
    """A download or a quantize run finishing (its file renamed over the path) after the header was read: the
    loader read the header from one file and hashed and loaded the data of another, which, replaced between
    the hash and the load, loaded unchecked. Header, checksum and data now come from the one file opened."""
    import gpu.checkpoint.format as fmt

    path = tmp_path / "model.safetensors"
    path.write_bytes(Path(tiny_flux_int4).read_bytes())
    newer = _rewrite(Path(tiny_flux_int4), tmp_path / "newer.safetensors",
                     edit_tensors=lambda t: t.update({"proj_out.bias": t["proj_out.bias"] + 1}))  # fmt: skip
    original_meta, original = load_checkpoint(path)
    meta_from_header = fmt._meta_from_header

    def then_replaced(name: str, header: dict) -> fmt.CheckpointMeta:
        os.replace(newer, path)
        return meta_from_header(name, header)

    monkeypatch.setattr(fmt, "_meta_from_header", then_replaced)
    meta, tensors = load_checkpoint(path)
    monkeypatch.undo()
    assert not newer.exists()  # it was renamed over the path during the load
    assert meta.sha256 == original_meta.sha256 != read_checkpoint_meta(path).sha256
    assert tensors.keys() == original.keys()
    assert all(torch.equal(tensors[k], original[k]) for k in tensors)


def _raw_checkpoint(path: Path, meta: dict, entries: dict, data: bytes) -> Path:
    """A checkpoint written byte by byte (``entries``: the header's tensors), its checksum that of ``data``."""
    meta = {**meta, "sha256": hashlib.sha256(data).hexdigest()}
    header = json.dumps({"__metadata__": {"svdq": json.dumps(meta)}, **entries}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_the_checksum_covers_gaps_between_tensors_and_verify_reads_like_load(tiny_flux_int4, tmp_path):
    """Every byte after the header is hashed (the digest's definition), bytes between tensors included; a file
    only checked (``verify_checkpoint``, which keeps no tensor) passes and fails exactly as a load does."""
    from gpu.checkpoint.format import verify_checkpoint

    raw = Path(tiny_flux_int4).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    meta = json.loads(header.pop("__metadata__")["svdq"])
    # the model's own tensors (verify checks the set its skeleton needs), 4 bytes of gap after the first in the file
    first = min(header.values(), key=lambda e: e["data_offsets"][0])["data_offsets"][1]
    for e in header.values():
        if e["data_offsets"][0] >= first:
            e["data_offsets"] = [e["data_offsets"][0] + 4, e["data_offsets"][1] + 4]
    data = data[:first] + b"gap!" + data[first:]
    good = _raw_checkpoint(tmp_path / "gap.safetensors", meta, header, data)
    _, tensors = load_checkpoint(good)
    assert all(torch.equal(t, load_checkpoint(tiny_flux_int4)[1][k]) for k, t in tensors.items())
    assert verify_checkpoint(good).sha256 == hashlib.sha256(data).hexdigest()
    bad = tmp_path / "gap changed.safetensors"
    bad.write_bytes(good.read_bytes().replace(b"gap!", b"gap?"))
    for check in (load_checkpoint, verify_checkpoint):
        with pytest.raises(CheckpointError, match="gap changed.safetensors: checksum mismatch: .* corrupt"):
            check(bad)


@pytest.mark.parametrize(
    "entries,message",
    [
        ({"a": {"dtype": "I32", "shape": [3], "data_offsets": [0, 8]}},
         r"tensor a has 8 bytes of data, its shape \[3\] and dtype I32 need 12"),
        ({"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}}, "tensors a and b share bytes"),
        ({"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 8]}}, "tensor a has dtype F4, which no SVDQ"),
    ],
)  # fmt: skip
def test_a_header_whose_tensors_do_not_fit_their_bytes_is_named(tiny_flux_int4, tmp_path, entries, message):
    """Refused before any data is read, with the file's name (safetensors' own error named neither)."""
    meta = json.loads(read_checkpoint_meta(tiny_flux_int4).to_json())
    bad = _raw_checkpoint(tmp_path / "odd.safetensors", meta, entries, bytes(8))
    with pytest.raises(CheckpointError, match=f"odd.safetensors: {message}"):
        load_checkpoint(bad)


def test_a_wrong_model_is_named_before_its_data_is_read(tiny_flux_int4, tmp_path):
    """A file of another model (its tensors not the ones the skeleton needs) was read and hashed whole first:
    gigabytes for a 12B model before the message; with its data damaged as well, the user was told "corrupt"
    instead of "the wrong model". The tensor set is checked from the header, before any data."""
    meta = json.loads(read_checkpoint_meta(tiny_flux_int4).to_json())
    entries = {"a": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}
    other = _raw_checkpoint(tmp_path / "other.safetensors", meta, entries, struct.pack("<i", 7))
    damaged = tmp_path / "other damaged.safetensors"
    damaged.write_bytes(other.read_bytes()[:-4] + struct.pack("<i", 8))
    with pytest.raises(CheckpointError, match=r"other damaged.safetensors: missing tensors: b"):
        load_checkpoint(damaged, {"b": ((1,), torch.int32)})


def test_a_load_onto_another_device_hashes_the_bytes_it_places(tiny_flux_int4, tmp_path):
    """Onto a GPU the file is read through one host staging buffer (the whole file in host memory beside the
    text encoders swapped a 16 GB laptop): every tensor arrives on the device with its header's dtype and shape,
    and the checksum is still taken over the bytes placed (the "meta" device stands in for a GPU here;
    tests/gpu checks the values on a real one)."""
    meta = json.loads(read_checkpoint_meta(tiny_flux_int4).to_json())
    entries = {"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
               "b": {"dtype": "I32", "shape": [2], "data_offsets": [16, 24]}}  # fmt: skip
    data = bytes(range(12)) + b"gap!" + struct.pack("<2i", -1, 5)
    good = _raw_checkpoint(tmp_path / "staged.safetensors", meta, entries, data)
    _, tensors = load_checkpoint(good, device="meta")
    assert {k: (t.device.type, t.dtype, tuple(t.shape)) for k, t in tensors.items()} == {
        "a": ("meta", torch.bfloat16, (2, 3)), "b": ("meta", torch.int32, (2,))}  # fmt: skip
    bad = tmp_path / "staged damaged.safetensors"
    bad.write_bytes(good.read_bytes()[:-1] + b"\x01")
    with pytest.raises(CheckpointError, match="staged damaged.safetensors: checksum mismatch"):
        load_checkpoint(bad, device="meta")


@pytest.mark.parametrize("case", ["missing", "more blocks", "rope widths", "rope axes", "odd rope", "scheduler"])
def test_a_file_generate_would_refuse_is_refused_by_inspect_and_the_library(
    tiny_flux_int4, tmp_path, capsys, monkeypatch, case
):
    """A file without one of its model's tensors (or whose model_config describes blocks it does not hold) was
    "checksum OK" to inspect and added to the library as usable (their checks took no tensor set); generate then
    refused it, with no remedy. Its tensor set is checked against the skeleton the metadata describes, and its block
    counts against the header before that skeleton is built (num_layers 10000: 90 s and 1.8 GB to build). So is the
    rotary embedding's split of a head, which no tensor shows: a hand-edited axes_dims_rope [16, 56, 40] for
    [16, 56, 56] passed inspect and the library, and stopped generate mid-image; an odd width that adds up to the
    head's ([15, 65, 48]) stops it too (rotary embeddings turn pairs of channels). And so is the scheduler it
    records: a setting of the wrong type (base_shift "x") passed inspect and the library, and stopped generate
    mid-image."""
    import gpu.checkpoint.skeleton as skeleton
    from gpu.checkpoint.format import verify_checkpoint
    from gpu.errors import ModelLoadError
    from gpu.library import ModelLibrary
    from main import main

    built = []
    build = skeleton.build_skeleton
    monkeypatch.setattr(skeleton, "build_skeleton", lambda meta: built.append(meta) or build(meta))
    bad = tmp_path / "bad.safetensors"
    if case == "missing":
        _rewrite(Path(tiny_flux_int4), bad, edit_tensors=lambda t: t.pop("proj_out.bias"))
        message = "bad.safetensors: missing tensors: proj_out.bias"
    elif case == "more blocks":
        blocks = read_checkpoint_meta(tiny_flux_int4).model_config["num_single_layers"]
        edit_svdq_meta(Path(tiny_flux_int4), bad, lambda d: d["model_config"].update(num_single_layers=blocks + 40))
        message = (f"bad.safetensors: the model_config in its SVDQ metadata gives num_single_layers {blocks + 40}, "
                   f"but the file holds tensors of {blocks} single_transformer_blocks")  # fmt: skip
    elif case == "scheduler":
        record = {"class": "FlowMatchEulerDiscreteScheduler", "config": {"base_shift": "x"}}
        edit_svdq_meta(Path(tiny_flux_int4), bad, lambda d: d.update(scheduler=record))
        message = ("bad.safetensors: the scheduler its SVDQ metadata records is invalid "
                   '(FlowMatchEulerDiscreteScheduler config: base_shift is "x", not a number or null)')  # fmt: skip
    else:
        head = read_checkpoint_meta(tiny_flux_int4).model_config["attention_head_dim"]
        widths = {"rope widths": [head // 8, head // 2, head // 8 * 3 - 16],
                  "rope axes": [head // 2 - 1, head // 2 + 1],
                  "odd rope": [head // 8 - 1, head // 2 + 1, head - head // 8 - head // 2]}[case]  # fmt: skip
        edit_svdq_meta(Path(tiny_flux_int4), bad, lambda d: d["model_config"].update(axes_dims_rope=widths))
        problem = (f"they add up to {head - 16}, but the attention heads are {head} wide (attention_head_dim)"
                   if case == "rope widths" else "it needs 3 positive even numbers, one per position axis")
        message = f"bad.safetensors: the model_config in its SVDQ metadata gives axes_dims_rope {widths}: {problem}"
    remedy = "re-quantize the model, or copy or download the file again"
    with pytest.raises(CheckpointError, match=re.escape(message)) as refused:
        verify_checkpoint(bad)
    assert refused.value.hint == remedy
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        ModelLibrary(tmp_path / "data").add(bad)
    assert not (tmp_path / "data" / "library.json").exists()  # nothing listed
    assert main(["--data-dir", str(tmp_path / "data"), "inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err == f"error: {with_hint(str(refused.value), remedy)}\n"
    assert built == [] if case != "missing" else built  # refused from the header alone
