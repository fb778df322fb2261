"""SVDQ files read through a link of the user's: since models are read under the name they were picked by (a Hugging
Face cache link to a suffix-less blob), a link ``current -> pack/q.safetensors`` was refused as "not a
.safetensors file" (and so was a Windows short name, ``FLUX-I~1.SAF``), and a link in another folder no longer
found the base pipeline the quantizer recorded relative to the real file."""

from __future__ import annotations

import shutil

import pytest
from test_base_fit import with_recorded_base

from gpu.errors import ModelLoadError
from gpu.generation.pipeline_loader import resolve_base
from gpu.library import ModelLibrary
from gpu.paths import resources_dir

MODELS = resources_dir() / "models"


def test_a_link_elsewhere_finds_the_base_recorded_beside_the_real_file(tmp_path):
    recorded = {"path": str(tmp_path / "gone" / "mybase"), "name": "no-such-name", "relative_path": "mybase"}
    with_recorded_base(tmp_path / "pack" / "q.safetensors", recorded)
    base = shutil.copytree(MODELS / "demo", tmp_path / "pack" / "mybase")
    link = tmp_path / "links" / "q.safetensors"
    link.parent.mkdir()
    link.symlink_to("../pack/q.safetensors")
    library = ModelLibrary(tmp_path / "data")
    facts = library.resolve(str(link)).facts
    assert facts is not None and facts.path == link  # read under the name it was picked by
    assert resolve_base(facts, library, None) == base  # was: not found (tried links/mybase only)
    shutil.move(base, tmp_path / "links" / "mybase")  # a base beside the link is found too
    assert resolve_base(facts, library, None) == tmp_path / "links" / "mybase"


@pytest.mark.parametrize("name", ["current", "FLUX-I~1.SAF"], ids=["no suffix", "windows short name"])
def test_a_link_named_otherwise_to_an_svdq_file_is_a_model(tmp_path, name):
    real = tmp_path / "pack" / "flux-int4.safetensors"
    real.parent.mkdir()
    shutil.copyfile(MODELS / "demo-int4.safetensors", real)
    link = tmp_path / name
    link.symlink_to(real)
    library = ModelLibrary(tmp_path / "data")
    entry = library.add(link)  # was: "current: not a .safetensors file"
    assert (entry.kind, entry.path) == ("svdq", link)
    assert library.resolve(str(link)).facts.kind == "svdq"  # generate --model PATH too


def test_a_link_to_a_pickle_is_named_a_pickle(tmp_path):
    real = tmp_path / "pack" / "flux.ckpt"
    real.parent.mkdir()
    real.write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp_path / "current").symlink_to(real)
    with pytest.raises(ModelLoadError, match=r"^flux.ckpt: a PyTorch pickle file"):
        ModelLibrary(tmp_path / "data").add(tmp_path / "current")
    blob = tmp_path / "blobs" / "0123abcd"  # a Hugging Face cache's blob: the link's name is the one that tells
    blob.parent.mkdir()
    blob.write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp_path / "model.ckpt").symlink_to(blob)
    with pytest.raises(ModelLoadError, match=r"^model.ckpt: a PyTorch pickle file"):
        ModelLibrary(tmp_path / "data").add(tmp_path / "model.ckpt")
