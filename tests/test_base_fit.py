"""An SVDQ file's base pipeline must fit it (``base_misfit``, the wizard's check: its text encoders' widths and
latent channels), and the recorded base is looked for in the order that finds the pipeline the file was made with:
absolute path, library name, then the path relative to the file.

``generate --base`` took any folder with a model_index.json and died mid-generation ("mat1 and mat2 shapes cannot
be multiplied"); and the relative path came first, so a file moved next to some other FLUX.1 folder ran with that
folder's encoders without a word."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from flux_dev_sized import flux_dev_sized
from header_files import edit_svdq_meta

from gpu.errors import CheckpointError, ModelLoadError
from gpu.generation.pipeline_loader import resolve_base
from gpu.library import ModelLibrary
from gpu.paths import resources_dir

MODELS = resources_dir() / "models"


def with_recorded_base(out: Path, base: dict[str, str]) -> Path:
    """demo-int4 at ``out``, its recorded base pipeline replaced by ``base`` (the header alone changes: the data
    section and its checksum stay valid)."""
    return edit_svdq_meta(MODELS / "demo-int4.safetensors", out, lambda meta: meta["base_model"].update(base))


def misfit_base(folder: Path) -> Path:
    """The demo pipeline with a T5 twice as wide (256): complete and loadable, but its prompt embeddings do not fit
    the demo transformer's 128-wide text input."""
    from safetensors.torch import save_file
    from transformers import T5Config, T5EncoderModel

    shutil.copytree(MODELS / "demo", folder)
    config = json.loads((folder / "text_encoder_2" / "config.json").read_text())
    config["d_model"] = 256
    t5 = T5Config(**{k: v for k, v in config.items() if not k.startswith("_")})
    weights = T5EncoderModel(t5).state_dict()
    del weights["encoder.embed_tokens.weight"]  # tied to "shared": saved once
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / "text_encoder_2" / "model.safetensors")
    t5.save_pretrained(folder / "text_encoder_2")
    return folder


def test_generate_with_a_base_that_does_not_fit_is_one_error_line(tmp_path, capsys):
    from main import main

    base, out = misfit_base(tmp_path / "misfit"), tmp_path / "x.png"
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", "demo-int4", "--base",
                 str(base), "--steps", "1", "--width", "64", "--height", "64", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith(f"error: --base {base}: the pipeline {base} does not fit demo-int4.safetensors "
                          "(joint_attention_dim 128 vs 256"), err  # fmt: skip
    assert "Traceback" not in err and "the model was quantized from" in err


def test_the_recorded_absolute_path_comes_before_a_folder_beside_the_file(tmp_path):
    original = shutil.copytree(MODELS / "demo", tmp_path / "original")
    beside = shutil.copytree(MODELS / "demo", tmp_path / "moved" / "FLUX.1-dev")
    recorded = {"path": str(original), "name": "no-such-name", "relative_path": "FLUX.1-dev"}
    model = with_recorded_base(tmp_path / "moved" / "flux-int4.safetensors", recorded)
    library = ModelLibrary(tmp_path / "data")
    facts = library.resolve(str(model)).facts
    assert resolve_base(facts, library, None) == original
    shutil.rmtree(original)  # copied to another machine with its base beside it: found there
    assert resolve_base(facts, library, None) == beside


def test_a_folder_beside_the_file_that_does_not_fit_is_not_taken_for_its_base(tmp_path, monkeypatch):
    beside = flux_dev_sized(tmp_path / "moved" / "FLUX.1-dev")  # a full-size FLUX.1-dev; the file is the demo's
    recorded = {"path": "/mnt/usb/FLUX.1-dev", "name": "my-flux-dev", "relative_path": "FLUX.1-dev"}
    model = with_recorded_base(tmp_path / "moved" / "flux-dev-int4.safetensors", recorded)
    library = ModelLibrary(tmp_path / "data")
    notes: list[str] = []  # the built-in demo pipeline fits the file: it stands in, and is said to
    assert resolve_base(library.resolve(str(model)).facts, library, None, notes) == MODELS / "demo"
    assert notes == ["the base pipeline flux-dev-int4.safetensors records (my-flux-dev) does not fit it; it runs "
                     f"with the library's pipeline 'demo' ({MODELS / 'demo'}), which fits it"]  # fmt: skip
    without_builtins(monkeypatch, tmp_path)
    with pytest.raises(ModelLoadError) as raised:
        resolve_base(library.resolve(str(model)).facts, library, None)
    assert f"{beside}, which does not fit (joint_attention_dim 128 vs 4096" in str(raised.value)
    assert str(raised.value).endswith("the library's pipelines, none of which fits it)")
    assert raised.value.hint == ("add the diffusers FLUX.1 pipeline folder the model was quantized from to the library "
                                 "(in the app: \"Add folder…\" in the Models panel)")  # no --base: the app has none


def without_builtins(monkeypatch, tmp_path: Path) -> None:
    """The library lists no built-in model (none ships under the resources folder it reads)."""
    import gpu.library

    monkeypatch.setattr(gpu.library, "resources_dir", lambda: tmp_path / "no-resources")


def test_a_model_quantized_elsewhere_runs_with_the_librarys_pipeline_that_fits_it(tmp_path, monkeypatch, capsys):
    """A file made on another machine records that machine's base (its path, its library name): generate refused it,
    with "pass --base", although the library's demo pipeline fits it, and the app, which has no --base, could not
    use it at all. The library's pipeline that fits it runs it, and the job says so."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService
    from main import main

    far = with_recorded_base(tmp_path / "far.safetensors", {"name": "FLUX.1-dev", "path": "/nowhere/FLUX.1-dev",
                                                            "relative_path": "FLUX.1-dev"})  # fmt: skip
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    (image,) = service.generate(GenerationRequest("a red star", model=str(far), steps=1, width=64, height=64))
    assert image.settings["base"] == "demo"  # the PNG records the base that ran
    assert image.extras["notes"] == ["the base pipeline far.safetensors records (FLUX.1-dev) is not on this "
                                     f"machine; it runs with the library's pipeline 'demo' ({MODELS / 'demo'}), "
                                     "which fits it"]  # fmt: skip

    without_builtins(monkeypatch, tmp_path)  # none fits: the command line names --base beside the app's remedy
    out = tmp_path / "x.png"
    assert main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", str(far), "--steps", "1",
                 "--width", "64", "--height", "64", "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert not out.exists() and "far.safetensors: its base pipeline (text encoders, VAE) was not found" in err
    assert err.endswith("(in the app: \"Add folder…\" in the Models panel), or give its folder or library name with "
                        "--base\n")  # fmt: skip


def _pipeline(folder: Path, guided: bool, t5_width: int = 128) -> Path:
    """The demo pipeline at ``folder`` (its weights linked, not copied), its transformer FLUX.1-dev's kind (guidance an
    input) or FLUX.1-schnell's with schnell's scheduler (no shift), its T5 ``t5_width`` wide as its config says."""
    shutil.copytree(MODELS / "demo", folder, copy_function=os.symlink, ignore=shutil.ignore_patterns("*.json"))
    for config in (MODELS / "demo").rglob("*.json"):
        settings = json.loads(config.read_text())
        if config.parent.name == "transformer":
            settings["guidance_embeds"] = guided
        elif config.parent.name == "scheduler" and not guided:
            settings.update(shift=1.0, use_dynamic_shifting=False)
        elif config.parent.name == "text_encoder_2":
            settings["d_model"] = t5_width
        (folder / config.relative_to(MODELS / "demo")).write_text(json.dumps(settings))
    return folder


def test_the_stand_in_base_is_one_that_fits_of_the_models_kind(tmp_path, monkeypatch):
    """A FLUX.1-dev file whose base is not here ran with the first pipeline of the library that fits it, a
    FLUX.1-schnell one added before a FLUX.1-dev one (another scheduler: other images), said to be "which fits it".
    A pipeline that does not fit is never taken; of those that fit, one of the file's kind, else the note says."""
    without_builtins(monkeypatch, tmp_path)
    library = ModelLibrary(tmp_path / "data")
    for name, guided, width in (("wide", True, 256), ("schnell", False, 128), ("dev", True, 128)):
        library.add(_pipeline(tmp_path / name, guided, width))
    recorded = {"name": "FLUX.1-dev", "path": "/nowhere/FLUX.1-dev", "relative_path": "FLUX.1-dev"}
    dev_model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "dev-int4.safetensors",
                               lambda meta: (meta["model_config"].update(guidance_embeds=True),
                                             meta["base_model"].update(recorded)))  # fmt: skip
    facts = library.resolve(str(dev_model)).facts
    notes: list[str] = []
    assert resolve_base(facts, library, None, notes) == tmp_path / "dev"
    assert notes == ["the base pipeline dev-int4.safetensors records (FLUX.1-dev) is not on this machine; it runs "
                     f"with the library's pipeline 'dev' ({tmp_path / 'dev'}), which fits it"]  # fmt: skip
    library.remove("dev")  # only one of the other kind fits: taken, and said to be of another kind
    notes.clear()
    assert resolve_base(facts, library, None, notes) == tmp_path / "schnell"
    assert notes == ["the base pipeline dev-int4.safetensors records (FLUX.1-dev) is not on this machine; it runs "
                     f"with the library's pipeline 'schnell' ({tmp_path / 'schnell'}), which fits it but is the "
                     "pipeline of a model without guidance input (FLUX.1-schnell's kind) and the model is a "
                     "guidance-distilled model (FLUX.1-dev's kind): its scheduler may not be the model's, and the "
                     "images then differ from its own base's"]  # fmt: skip


def test_a_stand_in_base_gives_way_to_the_recorded_base_once_it_is_here(tmp_path, monkeypatch):
    """The note of a stand-in base said "is not on this machine" where the recorded base folder was there without
    its model_index.json; and once the user put the base in place, the same service kept the stand-in loaded, its
    note now false: the recorded base is looked for again before each job while a stand-in runs the model. That
    look inspected every library model (twice: the recorded name is not the library's) several times a job, and
    took a base still being copied (its VAE weights not there yet): the job failed and no model stayed loaded."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    real = tmp_path / "realbase"
    real.mkdir()  # a copy begun, not yet done
    model = with_recorded_base(tmp_path / "moved.safetensors", {"name": "realbase", "path": str(real),
                                                                "relative_path": "nope"})  # fmt: skip
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    request = GenerationRequest("a red star", model=str(model), steps=1, width=64, height=64)
    (image,) = service.generate(request)
    assert image.settings["base"] == "demo"
    assert image.extras["notes"] == ["the base pipeline moved.safetensors records (realbase) is not a pipeline "
                                     f"folder here ({real} has no model_index.json); it runs with the library's "
                                     f"pipeline 'demo' ({MODELS / 'demo'}), which fits it"]  # fmt: skip
    real.rmdir()
    shutil.copytree(MODELS / "demo", real, copy_function=os.symlink)
    vae = real / "vae" / "diffusion_pytorch_model.safetensors"
    vae.unlink()  # the copy under way: its VAE weights not there yet
    inspected = []
    entries = ModelLibrary.entries
    monkeypatch.setattr(ModelLibrary, "entries", lambda self: inspected.append(1) or entries(self))
    assert service.is_loaded(str(model)) and inspected == []  # no model of the library inspected to tell
    (image,) = service.generate(request)
    assert image.settings["base"] == "demo"  # the stand-in runs on
    vae.symlink_to(MODELS / "demo" / "vae" / "diffusion_pytorch_model.safetensors")
    shutil.move(real / "text_encoder_2", tmp_path / "text_encoder_2")  # a folder of it still to come
    assert service.is_loaded(str(model))
    shutil.move(tmp_path / "text_encoder_2", real / "text_encoder_2")  # the copy done
    assert not service.is_loaded(str(model))
    (image,) = service.generate(request)
    assert service.loaded.base_path == real and image.extras["notes"] == []
    assert service.is_loaded(str(model))  # and kept while it stays


def test_a_listed_base_without_its_transformer_weights_is_the_models_base_for_good(tmp_path):
    """A listed pipeline whose transformer weights the user deleted (the SVDQ file replaces them: 23 GB for FLUX.1)
    was no base by its name (the library refused it as a model), while the look before each job took it: the model
    reloaded its stand-in at every job. It is the base, by either look."""
    from gpu.generation.pipeline_loader import recorded_base_here

    base = tmp_path / "FLUX.1-dev"
    shutil.copytree(MODELS / "demo", base, copy_function=os.symlink)
    library = ModelLibrary(tmp_path / "data")
    library.add(base, name="FLUX.1-dev")
    for weights in (base / "transformer").glob("*.safetensors"):
        weights.unlink()
    model = with_recorded_base(tmp_path / "moved.safetensors", {"name": "FLUX.1-dev", "path": "/elsewhere/FLUX.1-dev",
                                                                "relative_path": "nope"})  # fmt: skip
    facts = library.resolve(str(model)).facts
    notes: list[str] = []
    assert resolve_base(facts, library, None, notes) == base == recorded_base_here(facts, library)
    assert notes == []


def _demo_scheduler(**changes: object) -> dict:
    """The scheduler record of the demo pipeline's scheduler (its scheduler_config.json), with ``changes``."""
    config = json.loads((MODELS / "demo" / "scheduler" / "scheduler_config.json").read_text())
    return {"class": config["_class_name"], "config": {**{k: v for k, v in config.items() if k[0] != "_"}, **changes}}


@pytest.mark.parametrize("recorded", [True, False])
def test_a_model_that_records_its_scheduler_runs_with_it_on_a_base_with_another(tmp_path, monkeypatch, recorded):
    """An SVDQ file recorded no scheduler: run on a stand-in base of the other kind (a FLUX.1-dev pipeline for a
    model of FLUX.1-schnell's kind), the note could only say its scheduler "may not be the model's", and the images
    were the stand-in scheduler's. A file that records the scheduler it was made with runs with it, and says so; one
    made before it was recorded (demo-int4) runs and reads as before."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    without_builtins(monkeypatch, tmp_path)
    library = ModelLibrary(tmp_path / "data")
    dev = _pipeline(tmp_path / "dev", guided=True)  # the other kind than demo-int4's, and another scheduler
    scheduler_file = dev / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(json.dumps({**json.loads(scheduler_file.read_text()), "shift": 1.0,
                                          "use_dynamic_shifting": False}))  # fmt: skip
    library.add(dev)
    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "far.safetensors",
                           lambda meta: (meta["base_model"].update(name="FLUX.1-schnell", path="/nowhere/schnell",
                                                                   relative_path="schnell"),
                                         meta.update(scheduler=_demo_scheduler()) if recorded else None))  # fmt: skip
    service = GenerationService(library)
    (image,) = service.generate(GenerationRequest("a red star", model=str(model), steps=2, width=64, height=64))
    scheduler = service.loaded.pipe.scheduler
    stand_in = ("the base pipeline far.safetensors records (FLUX.1-schnell) is not on this machine; it runs with the "
                f"library's pipeline 'dev' ({dev}), which fits it")  # fmt: skip
    assert image.settings["base"] == "dev"
    if recorded:
        assert image.extras["notes"] == [stand_in, "far.safetensors runs with the scheduler it records it was made "
                                         "with, not its base pipeline's (shift 3.0 vs 1.0, use_dynamic_shifting true "
                                         "vs false: the model's vs the base's)"]  # fmt: skip
        assert (scheduler.config.shift, scheduler.config.use_dynamic_shifting) == (3.0, True)
        assert float(scheduler.sigmas[1]) != 0.5  # the 2-step schedule shifted by the image's size, as it was made
    else:  # today's words and scheduler
        assert image.extras["notes"] == [stand_in + " but is the pipeline of a guidance-distilled model (FLUX.1-dev's "
                                         "kind) and the model is a model without guidance input (FLUX.1-schnell's "
                                         "kind): its scheduler may not be the model's, and the images then differ "
                                         "from its own base's"]  # fmt: skip
        assert (scheduler.config.shift, scheduler.config.use_dynamic_shifting) == (1.0, False)
        assert float(scheduler.sigmas[1]) == 0.5


def test_a_recorded_scheduler_the_same_as_the_bases_is_not_said(tmp_path):
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: meta.update(scheduler=_demo_scheduler()))  # fmt: skip
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    (image,) = service.generate(GenerationRequest("a red star", model=str(model), steps=1, width=64, height=64))
    assert image.settings["base"] == "demo" and image.extras["notes"] == []


_DIFFERS = "(shift 3.0 vs 1.0, use_dynamic_shifting true vs false, use_karras_sigmas false vs true: the model's vs " \
    "the base's)"
_BASES_RAN = "own.safetensors runs with its base pipeline's scheduler, not the one it records it was made with " \
    + _DIFFERS
_RECORDED_RAN = "own.safetensors runs with the scheduler it records it was made with, not its base pipeline's " \
    + _DIFFERS


@pytest.mark.parametrize("recorded, named", [("mine", False), ("mine", True), ("/nowhere/schnell", True)])
def test_only_the_base_folder_the_model_records_keeps_its_own_scheduler(tmp_path, recorded, named):
    """The recorded scheduler replaced the base's only where no --base was given: the same pipeline ran another
    scheduler in the app (no base named) than under ``--base`` (the CLI re-running a PNG's recorded base), so the
    images differed. Decided from the folder alone: the folder the model records keeps its scheduler (one the user
    set there, Karras sigmas, stays), named or not; any other runs the recorded one; the note says which ran."""
    import torch

    from gpu.generation.pipeline_loader import load_pipeline

    mine = _pipeline(tmp_path / "mine", guided=False)  # schnell's scheduler: no shift
    scheduler_file = mine / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(json.dumps({**json.loads(scheduler_file.read_text()), "use_karras_sigmas": True}))
    path = str(mine) if recorded == "mine" else recorded
    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: (meta["base_model"].update(path=path, name="nowhere"),
                                         meta.update(scheduler=_demo_scheduler())))  # fmt: skip
    library = ModelLibrary(tmp_path / "data")
    loaded = load_pipeline(library.resolve(str(model)), library, torch.device("cpu"), base=mine if named else None)
    assert loaded.base_path == mine
    config = loaded.pipe.scheduler.config
    if recorded == "mine":
        assert (config.use_karras_sigmas, config.shift, config.use_dynamic_shifting) == (True, 1.0, False)
        assert loaded.base_notes == [_BASES_RAN]
    else:
        assert (config.use_karras_sigmas, config.shift, config.use_dynamic_shifting) == (False, 3.0, True)
        assert loaded.base_notes == [_RECORDED_RAN]


def test_a_newer_revision_of_the_recorded_base_runs_the_recorded_scheduler(tmp_path):
    """A Hugging Face cache whose recorded snapshot is gone runs its current revision: one whose
    scheduler_config.json changed ran the new revision's scheduler, not the one the model was made with."""
    import torch
    from test_library_paths import COMMIT, _cached

    from gpu.generation.pipeline_loader import load_pipeline

    newer = _pipeline(tmp_path / "newer", guided=False)
    scheduler_file = newer / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(json.dumps({**json.loads(scheduler_file.read_text()), "use_karras_sigmas": True}))
    files = {f.relative_to(newer).as_posix(): f for f in newer.rglob("*") if f.is_file()}
    root = _cached(tmp_path / "hub", "org/flux-mini", files)
    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: (meta["base_model"].update(path=str(root / "snapshots" / COMMIT),
                                                                   name="flux-mini", relative_path="nowhere"),
                                         meta.update(scheduler=_demo_scheduler())))  # fmt: skip
    _cached(tmp_path / "hub", "org/flux-mini", files, commit="f" * 40)
    shutil.rmtree(root / "snapshots" / COMMIT)
    library = ModelLibrary(tmp_path / "data")
    loaded = load_pipeline(library.resolve(str(model)), library, torch.device("cpu"))
    assert loaded.base_path == root / "snapshots" / ("f" * 40)
    config = loaded.pipe.scheduler.config
    assert (config.use_karras_sigmas, config.shift, config.use_dynamic_shifting) == (False, 3.0, True)
    assert loaded.base_notes[-1] == _RECORDED_RAN


@pytest.mark.parametrize("name", ["NoSuchScheduler", "os.system", "__class__", "FluxPipeline", "DDPMScheduler",
                                  "FlowMatchHeunDiscreteScheduler", "DPMSolverSDEScheduler"])
def test_a_recorded_scheduler_the_pipeline_cannot_drive_is_refused_naming_the_file(tmp_path, name):
    """The class is taken only from the schedulers FLUX's pipeline can drive (it sets a schedule up with sigmas and
    a shift mu), looked up by name, never imported or evaluated from the file: any other scheduler of diffusers'
    (DDPM's, flow-match Heun's, which refuses sigmas; DPM-SDE's, which needs a package the app lacks) passed the
    load and failed mid-image with a traceback."""
    from gpu.errors import UserError
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "odd.safetensors",
                           lambda meta: meta.update(scheduler={"class": name, "config": {}}))  # fmt: skip
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    with pytest.raises(UserError) as refused:
        service.generate(GenerationRequest("a red star", model=str(model), steps=1, width=64, height=64))
    assert str(refused.value) == (f"odd.safetensors: the scheduler its SVDQ metadata records, {name!r}, is not "
                                  "one this app can run the model with (it takes FlowMatchEulerDiscreteScheduler)")
    assert refused.value.hint == "update Nibble Studio, or re-quantize the model with this version"


@pytest.mark.parametrize(("changes", "problem"), [
    ({"base_shift": "x"}, 'base_shift is "x", not a number or null'),
    ({"use_dynamic_shifting": 2}, "use_dynamic_shifting is 2, not true or false"),
    ({"use_dynamic_shifting": 1.0}, "use_dynamic_shifting is 1.0, not true or false"),
    ({"use_dynamic_shifting": "1"}, 'use_dynamic_shifting is "1", not true or false'),
    ({"num_train_timesteps": 10**11}, "num_train_timesteps is 100000000000, not from 1 to 100000"),
    ({"use_dynamic_shifting": False, "shift": float("nan")}, "its schedule is not finite numbers"),
    ({"time_shift_type": "cubic"}, "`time_shift_type` must either be 'exponential' or 'linear'."),
])  # fmt: skip
def test_a_recorded_scheduler_config_that_would_fail_an_image_is_refused_naming_the_file(tmp_path, changes, problem):
    """A setting of the wrong type stopped generating mid-image (TypeError in the pipeline's shift), a schedule too
    long for memory was said to be the machine's fault ("needs more memory than is free"): each setting is checked
    against its default's type, the schedule's length is bounded, and the scheduler is run through a short schedule
    before the model loads, as the pipeline runs it."""
    from gpu.errors import UserError
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "odd.safetensors",
                           lambda meta: meta.update(scheduler=_demo_scheduler(**changes)))  # fmt: skip
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    with pytest.raises(UserError) as refused:
        service.generate(GenerationRequest("a red star", model=str(model), steps=1, width=64, height=64))
    assert str(refused.value) == ("odd.safetensors: the scheduler its SVDQ metadata records is invalid "
                                  f"(FlowMatchEulerDiscreteScheduler config: {problem})")  # fmt: skip
    assert refused.value.hint == "re-quantize the model, or copy or download the file again"


def test_settings_the_scheduler_class_does_not_take_are_no_difference(tmp_path):
    """diffusers keeps a key its scheduler class does not take in ``.config`` (a typo, a newer diffusers' setting):
    compared as settings, a file recording one showed the note "runs with the scheduler it records ... (shfit 1.0 vs
    null)" on its own base, on every image. Only the settings the class takes are compared."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from gpu.checkpoint.scheduler import scheduler_differences

    config = _demo_scheduler()["config"]
    base = FlowMatchEulerDiscreteScheduler.from_config(config)
    own = FlowMatchEulerDiscreteScheduler.from_config({**config, "shfit": 1.0, "num_inference_steps": 50})
    assert scheduler_differences(own, base) == []
    assert scheduler_differences(FlowMatchEulerDiscreteScheduler.from_config({**config, "shift": 1.0}), base) == [
        "shift 1.0 vs 3.0"]


def test_a_base_scheduler_the_pipeline_cannot_drive_is_not_recorded(tmp_path):
    """A quantizer recorded any scheduler class of diffusers' its base had: the model it wrote would be refused
    by loading (``checked_scheduler``). The record is optional: such a scheduler is left out (logged), a good one
    recorded with every setting."""
    from gpu.quantizer.shared import scheduler_record

    (tmp_path / "scheduler").mkdir()
    config = tmp_path / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({"_class_name": "FlowMatchHeunDiscreteScheduler", "shift": 3.0}))
    assert scheduler_record(tmp_path, "flux") == {}
    config.write_text(json.dumps({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}))
    record = scheduler_record(tmp_path, "flux")
    assert record["class"] == "FlowMatchEulerDiscreteScheduler" and record["config"]["shift"] == 3.0
    assert record["config"]["num_train_timesteps"] == 1000


def test_a_recorded_scheduler_that_needs_a_package_not_installed_is_refused_naming_it(tmp_path, monkeypatch):
    """A recorded ``use_beta_sigmas`` on an install without scipy (no dependency of the app): diffusers' ImportError
    escaped as a traceback from inspect, an unexpected failure in the models folder, and the quantizer's optional
    record. It is refused naming the package; the quantizer leaves the record out."""
    import diffusers.schedulers.scheduling_flow_match_euler_discrete as flow_match

    from gpu.checkpoint.format import read_checkpoint_meta
    from gpu.checkpoint.scheduler import checked_scheduler
    from gpu.quantizer.shared import scheduler_record

    monkeypatch.setattr(flow_match, "is_scipy_available", lambda: False)
    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "beta.safetensors",
                           lambda meta: meta.update(scheduler=_demo_scheduler(use_beta_sigmas=True)))  # fmt: skip
    meta = read_checkpoint_meta(model)
    with pytest.raises(CheckpointError) as refused:
        checked_scheduler(model.name, meta.architecture, meta.scheduler)
    assert refused.value.text == ("beta.safetensors: the scheduler its SVDQ metadata records needs the Python package "
                                  "scipy, which is not installed (install scipy, or re-quantize the model with a base "
                                  "pipeline whose scheduler does not need it)")  # fmt: skip
    base = shutil.copytree(MODELS / "demo", tmp_path / "base", ignore=shutil.ignore_patterns("*.safetensors"))
    scheduler_file = base / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(json.dumps({**json.loads(scheduler_file.read_text()), "use_beta_sigmas": True}))
    assert scheduler_record(base, "flux") == {}


def test_settings_the_recorded_class_does_not_take_never_reach_it_and_are_logged(tmp_path, caplog):
    """Only the settings the class takes are made into the scheduler: a key it does not take (a typo, a newer
    diffusers' setting) is left out of its config, and logged."""
    import logging

    from gpu.checkpoint.scheduler import checked_scheduler

    record = _demo_scheduler(shfit=1.0)
    with caplog.at_level(logging.INFO, logger="gpu.checkpoint.scheduler"):
        scheduler = checked_scheduler("own.safetensors", "flux", record)
    assert "shfit" not in scheduler.config
    assert "own.safetensors: settings of its recorded scheduler that FlowMatchEulerDiscreteScheduler does not take, " \
        "left out: shfit" in caplog.messages  # fmt: skip


@pytest.mark.parametrize("written", [1, 0])
def test_a_recorded_true_or_false_setting_written_as_1_or_0_is_taken_as_true_or_false(tmp_path, written):
    """JSON writers other than Python's, and hand edits, write a true-or-false setting as 1 or 0: the file was
    refused ("use_dynamic_shifting is 1, not true or false"). Exactly those two numbers are taken, as true and false
    (2, 1.0 and "1" are still refused: above), and inspect says them as such."""
    from gpu.checkpoint.format import read_checkpoint_meta
    from gpu.checkpoint.scheduler import checked_scheduler, scheduler_words

    record = _demo_scheduler(use_dynamic_shifting=written, stochastic_sampling=written)
    model = edit_svdq_meta(MODELS / "demo-int4.safetensors", tmp_path / "own.safetensors",
                           lambda meta: meta.update(scheduler=record))  # fmt: skip
    meta = read_checkpoint_meta(model)
    scheduler = checked_scheduler(model.name, meta.architecture, meta.scheduler)
    assert scheduler.config.use_dynamic_shifting is bool(written)
    assert scheduler.config.stochastic_sampling is bool(written)
    words = scheduler_words(meta)
    assert ("use_dynamic_shifting true" in words) == (written == 1), words
    assert ("stochastic_sampling true" in words) == (written == 1), words
