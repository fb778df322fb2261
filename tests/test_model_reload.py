"""A model whose files change on disk while it is loaded (``quantize --overwrite`` to the same file while the app
runs, a copy put over it) is loaded again: images are made with the weights on disk, and their "Model hash" is of
the weights that made them. The service kept a loaded pipeline by (path, base) alone and went on with the old
weights, while the PNG named the new file's hash."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from header_files import another_svdq_model, edit_svdq_meta
from safetensors.torch import load_file, save_file

import gpu.generation.pipeline_loader as pipeline_loader
import gpu.generation.service as service_module
from gpu.generation.loaded_files import loaded_files
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.model_hash import model_hash
from gpu.paths import resources_dir

MODELS = resources_dir() / "models"


def _request(model: str) -> GenerationRequest:
    return GenerationRequest("a red star", model=model, seed=1, steps=2, width=64, height=64)


def _pixels(result) -> np.ndarray:
    return np.asarray(result.image)


def test_weights_rewritten_in_place_are_loaded_again_and_the_image_names_them(tmp_path):
    folder = tmp_path / "mymodel"
    shutil.copytree(MODELS / "demo", folder)
    library = ModelLibrary(tmp_path / "data")
    library.add(folder)
    service = GenerationService(library, device=torch.device("cpu"))
    before = service.generate(_request("mymodel"))[0]

    weights = next((folder / "transformer").glob("*.safetensors"))
    tensors = {k: v * 1.5 if v.is_floating_point() else v for k, v in load_file(weights).items()}
    save_file(tensors, weights)  # in place: same name, same size; a new modification time

    after = service.generate(_request("mymodel"))[0]
    fresh = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu")).generate(
        _request("mymodel")
    )[0]
    assert np.array_equal(_pixels(after), _pixels(fresh))  # the new weights made it
    assert not np.array_equal(_pixels(after), _pixels(before))
    assert after.settings["model_hash"] == fresh.settings["model_hash"] == model_hash(folder)
    assert after.settings["model_hash"] != before.settings["model_hash"]


def _scaled(weights) -> None:
    """The weights of the file ``weights`` rewritten in place, each floating tensor times 1.5 (the same size)."""
    save_file({k: v * 1.5 if v.is_floating_point() else v for k, v in load_file(weights).items()}, weights)


def _other_scaling(config) -> None:
    """The VAE's ``config.json`` with another latent scaling factor: the same weights decode other pixels."""
    data = json.loads(config.read_text())
    data["scaling_factor"] *= 1.5
    config.write_text(json.dumps(data))


@pytest.mark.parametrize("part, change", [("vae/diffusion_pytorch_model.safetensors", _scaled),
                                          ("text_encoder/model.safetensors", _scaled),
                                          ("text_encoder_2/model.safetensors", _scaled),
                                          ("vae/config.json", _other_scaling)])  # fmt: skip
@pytest.mark.parametrize("kind", ["folder", "svdq"])
def test_a_vae_or_text_encoder_replaced_is_loaded_again(tmp_path, part, change, kind):
    """A pipeline folder's VAE or text encoders (their weights or configs) replaced while the model was loaded: only
    the transformer's files told a loaded pipeline from its files, so the jobs after ran on the old VAE or text
    encoder, and the images were not those the files on disk make. Also for the base pipeline an SVDQ file runs
    with (its text encoders and VAE)."""
    folder = tmp_path / "mymodel"
    shutil.copytree(MODELS / "demo", folder)
    library = ModelLibrary(tmp_path / "data")
    if kind == "folder":
        library.add(folder)
        model = "mymodel"
    else:  # the copy its base: recorded so, as the quantizer records the folder it was made from
        recorded = {"path": str(folder), "name": "mymodel", "relative_path": "mymodel"}
        svdq = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "mine.safetensors",
                              lambda meta: meta["base_model"].update(recorded))  # fmt: skip
        library.add(svdq)
        model = "mine"
    service = GenerationService(library, device=torch.device("cpu"))
    before = service.generate(_request(model))[0]
    assert service.loaded.base_path == folder and service.is_loaded(model)

    change(folder / part)
    assert not service.is_loaded(model)  # was: loaded, the old VAE or text encoder kept
    after = service.generate(_request(model))[0]
    assert service.is_loaded(model)
    fresh = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu")).generate(
        _request(model)
    )[0]
    assert np.array_equal(_pixels(after), _pixels(fresh))  # what the files on disk make
    assert not np.array_equal(_pixels(after), _pixels(before))


@pytest.mark.parametrize("how", ["cp -p", "rsync -a"])
def test_a_file_copied_over_with_the_same_size_and_time_is_another_file(tmp_path, how):
    """``cp -p`` over the model rewrites its inode with the same size and time (only the change time moves);
    ``rsync -a`` renames a new inode over it: the change time or the inode, then its header (the data checksum it
    records), tell the new file."""
    model = tmp_path / "mine.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", model)
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    service.load(str(model))
    first = service.loaded
    assert service.is_loaded(str(model))
    service.load(str(model))
    assert service.loaded is first  # unchanged files: nothing is read again

    # another model, and its size and modification time are the model's
    replacement = another_svdq_model(model, tmp_path / "incoming.safetensors")
    assert replacement.stat().st_size == model.stat().st_size
    times = (model.stat().st_atime_ns, model.stat().st_mtime_ns)
    inode = model.stat().st_ino
    if how == "cp -p":
        shutil.copyfile(replacement, model)  # into the same inode, as cp does
        os.utime(model, ns=times)
        assert model.stat().st_ino == inode
    else:
        os.utime(replacement, ns=times)
        os.replace(replacement, model)
    assert not service.is_loaded(str(model))  # was: loaded (cp -p), the old weights used for the new file's images
    service.load(str(model))
    assert service.loaded is not first and service.is_loaded(str(model))


def test_a_file_changed_while_it_loads_is_loaded_again(tmp_path, monkeypatch):
    """Written to while it was read: what was read may be part old, part new, and its hash may be of neither. The
    load starts over until the files stayed as they were from reading to hashing."""
    model = tmp_path / "mine.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", model)
    hashed = []

    def written_meanwhile(path):
        if not hashed:  # another program touches it between the weights being read and hashed
            os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1_000_000))
        hashed.append(path)
        return model_hash(path)

    monkeypatch.setattr(service_module, "model_hash", written_meanwhile)
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    service.load(str(model))
    assert len(hashed) == 2 and service.is_loaded(str(model))
    assert service.loaded.model_hash == model_hash(model)


def test_the_model_hash_of_another_file_of_the_same_size_and_time_is_its_own(tmp_path):
    model, incoming = tmp_path / "mine.safetensors", tmp_path / "incoming.safetensors"
    model.write_bytes(b"old weights")
    before = model_hash(model)
    incoming.write_bytes(b"new weights")
    os.utime(incoming, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns))
    os.replace(incoming, model)
    assert model_hash(model) != before


def test_a_library_name_given_to_another_file_outside_the_app_is_not_loaded(tmp_path):
    """library.json edited while the app runs (or the name removed and another file added under it by the CLI):
    ``is_loaded`` answered from the file loaded under the name before, while the job resolved the name and loaded
    the new file, so the app said nothing ("Loading…" skipped) while a model of gigabytes loaded."""
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", first)
    shutil.copy(MODELS / "demo-int4.safetensors", second)
    data = tmp_path / "data"
    ModelLibrary(data).add(first, name="mine")
    service = GenerationService(ModelLibrary(data), device=torch.device("cpu"))
    service.load("mine")
    assert service.is_loaded("mine")

    elsewhere = ModelLibrary(data)  # another process: the CLI, or the file edited by hand
    elsewhere.remove("mine")
    elsewhere.add(second, name="mine")
    assert not service.is_loaded("mine")  # was: loaded (the first file, unchanged)
    service.load("mine")
    assert service.loaded.entry.path == second and service.is_loaded("mine")


@pytest.mark.parametrize("part", ["tokenizer_2/spiece.model", "tokenizer/vocab.json", "tokenizer/merges.txt"])
def test_a_tokenizer_file_the_load_does_not_read_changed_loads_nothing_again(tmp_path, part):
    """FLUX.1's tokenizers are transformers' fast ones, built from tokenizer.json where a folder has it: T5's
    sentencepiece file (spiece.model) and CLIP's vocab.json and merges.txt beside it are not read (they are only
    converted where tokenizer.json is missing). Stamped all the same, a new copy of one cost a reload of the whole
    pipeline, gigabytes for FLUX.1-dev. tokenizer.json itself changed is loaded again."""
    folder = shutil.copytree(MODELS / "demo", tmp_path / "mymodel")
    (folder / part).write_bytes(b"unread vocabulary")
    service = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    service.load(str(folder))
    (folder / part).write_bytes(b"another unread vocabulary")
    assert service.is_loaded(str(folder))  # was: not loaded, the whole pipeline read again
    tokenizer_json = folder / part.split("/")[0] / "tokenizer.json"
    tokenizer_json.write_bytes(tokenizer_json.read_bytes() + b"\n")
    assert not service.is_loaded(str(folder))


@pytest.mark.parametrize("component, vocabulary", [("tokenizer_2", ["spiece.model"]),
                                                   ("tokenizer", ["vocab.json", "merges.txt"])])  # fmt: skip
def test_a_tokenizer_without_tokenizer_json_is_stamped_by_the_files_it_is_converted_from(tmp_path, component,
                                                                                        vocabulary):  # fmt: skip
    """Without tokenizer.json, transformers builds the tokenizer from its sentencepiece file or its vocab.json and
    merges.txt: those are what tell a changed tokenizer then."""
    folder = shutil.copytree(MODELS / "demo", tmp_path / "mymodel")
    (folder / component / "tokenizer.json").unlink()
    for name in vocabulary:
        (folder / component / name).write_bytes(b"vocabulary")
    stamped = {str(path.relative_to(folder)) for path in loaded_files(folder) if path.is_file()}
    assert {f"{component}/{name}" for name in vocabulary} <= stamped
    other = "tokenizer" if component == "tokenizer_2" else "tokenizer_2"
    assert f"{other}/tokenizer.json" in stamped and f"{component}/tokenizer_config.json" in stamped


def test_a_base_file_replaced_while_the_base_loads_is_loaded_again(tmp_path, monkeypatch):
    """An SVDQ file's base pipeline (its VAE, text encoders) is known once the load resolved it, and its files were
    stamped after the load: one replaced while the base was being read was taken for the one loaded, and the jobs
    ran on the old VAE until it changed again. Its files are stamped before they are read now, and held to the files
    after the load: the load starts over."""
    folder = shutil.copytree(MODELS / "demo", tmp_path / "mymodel")
    recorded = {"path": str(folder), "name": "mymodel", "relative_path": "mymodel"}
    svdq = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "mine.safetensors",
                          lambda meta: meta["base_model"].update(recorded))  # fmt: skip
    library = ModelLibrary(tmp_path / "data")
    library.add(svdq)
    loads = []
    real = pipeline_loader.check_weights_present

    def vae_replaced_meanwhile(pipe, name):  # after the base pipeline was read, before the load ends
        if not loads:
            _other_scaling(folder / "vae" / "config.json")
        loads.append(name)
        return real(pipe, name)

    monkeypatch.setattr(pipeline_loader, "check_weights_present", vae_replaced_meanwhile)
    service = GenerationService(library, device=torch.device("cpu"))
    made = service.generate(_request("mine"))[0]
    assert len(loads) == 2  # was: 1, the old VAE config kept
    fresh = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu")).generate(
        _request("mine")
    )[0]
    assert np.array_equal(_pixels(made), _pixels(fresh))  # what the files on disk make
