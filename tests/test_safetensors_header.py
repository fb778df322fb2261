"""The header checks every reader of a .safetensors file goes through: each problem is named in words the user
can act on, with a hint (the app's dialog shows the hint as what to try)."""

from __future__ import annotations

import json
import struct

import pytest

from gpu.errors import CheckpointError
from gpu.safetensors_header import read_safetensors_header


def _header(entries: dict) -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("case,words", [
    # Bytes that are no header read as an absurd length: was "header claims 7306915995885594368 bytes but the
    # file has 800: truncated or not a safetensors file", numbers first and no hint.
    ("garbage", "broken.safetensors: not a safetensors file, or a damaged/incomplete copy (its header claims"),
    ("empty", "broken.safetensors: not a safetensors file (only 0 bytes)"),
    ("bad_json", "broken.safetensors: the header is not valid JSON"),
    ("not_object", "broken.safetensors: the header is not a JSON object"),
    ("bad_entry", "broken.safetensors: the header's entry for tensor 'w' is malformed"),
    ("truncated", "broken.safetensors: truncated: the header describes"),
])  # fmt: skip
def test_every_header_problem_is_named_with_a_hint(tmp_path, case, words):
    path = tmp_path / "broken.safetensors"
    path.write_bytes({
        "garbage": b"\x00garbage" * 100,
        "empty": b"",
        "bad_json": struct.pack("<Q", 10) + b"{not json}",
        "not_object": struct.pack("<Q", 2) + b"[]",
        "bad_entry": _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}),
        "truncated": _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}) + b"\0" * 4,
    }[case])  # fmt: skip
    with pytest.raises(CheckpointError) as raised:
        read_safetensors_header(path)
    assert str(raised.value).startswith(words), str(raised.value)
    assert raised.value.hint == "copy or download the file again"
    # what is wrong apart from the file's name, as the LoRA panel says it beside the path (was: only in the message)
    assert f"broken.safetensors: {raised.value.problem}" == str(raised.value) and raised.value.reason == ""


def test_a_file_that_cannot_be_opened_gives_the_systems_reason_apart(tmp_path):
    """A file the system will not open (its access taken away, held by another program; a folder here) is said
    "NAME: cannot read the file (WHY)"; the LoRA panel says only WHY beside the path, and took it out of those words
    by slicing them. The error now gives it apart (``reason``)."""
    folder = tmp_path / "style.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError) as raised:
        read_safetensors_header(folder)
    assert str(raised.value) == "style.safetensors: cannot read the file (Is a directory)"
    assert (raised.value.reason, raised.value.problem) == ("Is a directory", "cannot read the file (Is a directory)")
    assert raised.value.hint == "check that the file exists and that you may read it"


def test_a_pickle_is_named_with_every_suffix_pickles_are_recognised_by(tmp_path):
    """The sentence listed .ckpt/.pt/.bin while .pth files are recognised as pickles too."""
    import pickle

    from gpu.safetensors_header import PICKLE_PROBLEM, PICKLE_SUFFIXES

    path = tmp_path / "weights.pth"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))  # a bare pickle, never unpickled by the reader
    with pytest.raises(CheckpointError) as raised:
        read_safetensors_header(path)
    assert str(raised.value) == f"weights.pth: {PICKLE_PROBLEM}"
    assert PICKLE_PROBLEM.startswith("a PyTorch pickle file (.ckpt/.pt/.pth/.bin), not safetensors: ")  # the wording
    assert ".pth" in PICKLE_SUFFIXES


@pytest.mark.parametrize("header_len", [0x0280, 0x0380, 0x0480, 0x0580])
def test_a_header_whose_length_begins_like_a_pickle_is_read(tmp_path, header_len):
    """A header 640, 896, 1152 or 1408 bytes long starts the file with 80 02..05, a pickle's first two bytes: such
    a LoRA or model (its metadata happening to have that length) was refused as "a PyTorch pickle file"."""
    entries = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    raw = json.dumps(entries).encode()
    raw += b" " * (header_len - len(raw))  # safetensors pads its header with spaces
    path = tmp_path / "lora.safetensors"
    path.write_bytes(struct.pack("<Q", header_len) + raw + struct.pack("<2f", 1.0, 2.0))
    assert read_safetensors_header(path) == (header_len, entries)


def test_element_counts_per_dtype_from_the_shapes_under_a_prefix():
    """What the model panel's dtype and parameter count, and the single-file inspection's, are made from: elements
    per dtype of the tensors whose names start with the prefix (all of them by default), the metadata left out."""
    from gpu.safetensors_header import element_counts

    header = {
        "__metadata__": {"format": "pt"},
        "model.diffusion_model.a.weight": {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 24]},
        "model.diffusion_model.b.bias": {"dtype": "F32", "shape": [5], "data_offsets": [24, 44]},
        "model.diffusion_model.scale": {"dtype": "BF16", "shape": [], "data_offsets": [44, 46]},
        "vae.decoder.weight": {"dtype": "F16", "shape": [2, 2, 3], "data_offsets": [46, 70]},
    }
    assert element_counts(header) == {"BF16": 13, "F32": 5, "F16": 12}
    assert element_counts(header, "model.diffusion_model.") == {"BF16": 13, "F32": 5}
    assert element_counts(header, "text_encoder.") == {}
