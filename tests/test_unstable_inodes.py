"""A model's weights are who they are by path, size, modification time and contents, not by inode number: vfat and
exFAT (USB drives), cifs mounted with noserverino, sshfs and autofs hand a file a new inode number when they look at
it again, and every job then loaded the model again and hashed all of its weights again. A changed inode is looked
into (the files' headers: an SVDQ file's records its data's checksum) before anything is read again.

Copying the same file over the model (``cp -p``: a new inode, the same size, time and contents) is what such a file
system shows: the same file with another number.

And what counts is the files that load, as the model hash counts them: a README, a variant or a download in
progress in transformer/ made the model load again, or fail with "its weights kept changing while they were
read"."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import gpu.generation.service as service_module
import gpu.model_hash as model_hash_module
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.model_hash import model_hash
from gpu.paths import resources_dir

MODELS = resources_dir() / "models"


def _same_file_anew(path: Path) -> None:
    """``path`` replaced by a copy of itself with its size, time and contents: only its inode is another."""
    copy = path.with_name(f".{path.name}.copy")
    shutil.copy2(path, copy)
    os.replace(copy, path)


def test_a_new_inode_of_the_same_svdq_file_is_not_loaded_again(tmp_path):
    model = tmp_path / "mine.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", model)
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    service.load(str(model))
    first, inode = service.loaded, model.stat().st_ino
    _same_file_anew(model)
    assert model.stat().st_ino != inode
    assert service.is_loaded(str(model))
    service.load(str(model))
    assert service.loaded is first


def test_a_new_inode_of_the_same_weights_is_not_hashed_again(tmp_path, monkeypatch):
    model = tmp_path / "mine.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", model)
    before = model_hash(model)
    _same_file_anew(model)
    read = []

    def counted(name, mode="r", *args, **kwargs):
        f = open(name, mode, *args, **kwargs)  # noqa: SIM115 - handed to the caller, who closes it
        reading = f.read

        def counting(n=-1):
            data = reading(n)
            read.append(len(data))
            return data

        f.read = counting
        return f

    monkeypatch.setattr(model_hash_module, "open", counted, raising=False)
    assert model_hash(model) == before
    assert sum(read) < model.stat().st_size // 10  # its header looked at, not the 7.5 MiB of weights


def test_files_beside_the_weights_that_load_do_not_reload_the_model(tmp_path, monkeypatch):
    folder = shutil.copytree(MODELS / "demo", tmp_path / "mymodel")
    part = folder / "transformer" / "diffusion_pytorch_model.fp16.safetensors.part"
    hashed = []

    def downloading_meanwhile(path):  # a variant downloads into transformer/ while the model loads
        with open(part, "ab") as f:
            f.write(b"\0" * 4096)
        hashed.append(path)
        return model_hash(path)

    monkeypatch.setattr(service_module, "model_hash", downloading_meanwhile)
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    service.load(str(folder))  # was: "its weights kept changing while they were read"
    assert len(hashed) == 1
    (folder / "transformer" / "README.md").write_text("FLUX.1 transformer")
    assert service.is_loaded(str(folder))
    _same_file_anew(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    assert service.is_loaded(str(folder))
    (folder / "transformer" / "config.json").write_text(json_with_more_layers(folder))
    assert not service.is_loaded(str(folder))  # what loads did change


def json_with_more_layers(folder: Path) -> str:
    """The transformer's config.json asking for one more single block than its weights hold."""
    config = json.loads((folder / "transformer" / "config.json").read_bytes())
    return json.dumps({**config, "num_single_layers": config["num_single_layers"] + 1})


def _head_reads(monkeypatch) -> list[str]:
    """The files whose head ``gpu.model_hash`` reads (``head_digest``) from now on."""
    reads: list[str] = []
    real = model_hash_module.head_digest

    def counted(path: Path) -> str:
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(model_hash_module, "head_digest", counted)
    return reads


@pytest.mark.parametrize("how", ["chmod", "hard link"])
@pytest.mark.parametrize("kind", ["folder", "svdq"])
def test_a_change_time_moved_alone_reads_the_heads_at_one_job_only(tmp_path, monkeypatch, how, kind):
    """A chmod or a backup's hard link moves the change time alone (the same inode, size, time and contents): the
    first job after looks at the files' heads, which prove them the same, and notes the new change times; the jobs
    after that are stats only, not a read of every file's head each."""
    folder = shutil.copytree(MODELS / "demo", tmp_path / "mymodel")
    if kind == "folder":
        model = folder
    else:  # its base pipeline the folder: its VAE and text encoders are among the files looked at
        model = tmp_path / "mine.safetensors"
        shutil.copy(MODELS / "demo-int4.safetensors", model)
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    request = GenerationRequest("a red star", model=str(model), seed=1, steps=1, width=64, height=64)
    service.generate(request)
    first = service.loaded
    stamped = [Path(name) for name, *_ in service._loaded_key[2].files]
    for n, path in enumerate(stamped):
        if how == "chmod":
            path.chmod(0o600)
        else:
            os.link(path, tmp_path / f"backup-{n}")
    reads = _head_reads(monkeypatch)
    service.generate(request)
    assert len(reads) == len(stamped)  # each file's head, once: they are the same files
    service.generate(request)
    assert service.is_loaded(str(model))
    assert len(reads) == len(stamped)  # the jobs after: stats only
    assert service.loaded is first
