"""A quantize run never writes its output over a model it reads, with or without --overwrite: OUT set to the
single-file source, to the source pipeline's transformer weights, or into the base pipeline's folder is refused
before any work, naming it. The run wrote over the 16-bit source it had just read (or broke its pipeline) and said
"wrote …". The wizard, which names its output itself, refuses it the same way as it names it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
CHEAP = ["--calib-prompts", "2", "--calib-steps", "1", "--alpha-points", "2"]  # a run, if one starts, is short


@pytest.fixture
def single_file(tmp_path: Path) -> Path:
    from tests.bfl_files import save_bfl_transformer

    return save_bfl_transformer(DEMO, tmp_path / "flux1-demo.safetensors")


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_the_single_file_source_is_never_the_output(single_file, overwrite, capsys):
    from main import main

    before = single_file.read_bytes()
    args = ["quantize", str(single_file), "--base", "demo", "--out", str(single_file), *overwrite, *CHEAP]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {single_file} is the model this run quantizes: the quantized model would be "
                          "written over it (choose another output file")  # fmt: skip
    assert single_file.read_bytes() == before
    assert sorted(single_file.parent.iterdir()) == [single_file]  # no parts folder, no lock file


def test_a_pipeline_sources_weights_are_never_the_output(tmp_path, capsys):
    from main import main

    pipeline = shutil.copytree(DEMO, tmp_path / "demo")
    weights = pipeline / "transformer" / "diffusion_pytorch_model.safetensors"
    before = weights.read_bytes()
    assert main(["quantize", str(pipeline), "--out", str(weights), "--overwrite", *CHEAP]) == 2
    assert capsys.readouterr().err.startswith(f"error: {weights} is a file of the model this run quantizes, "
                                              f"{pipeline}: the quantized model would be written over it")  # fmt: skip
    assert weights.read_bytes() == before
    assert sorted(p.name for p in weights.parent.iterdir()) == ["config.json", weights.name]


def test_no_output_goes_inside_the_base_pipelines_folder(single_file, tmp_path, capsys):
    from main import main

    base = shutil.copytree(DEMO, tmp_path / "base")
    out = base / "transformer" / "int4.safetensors"
    assert main(["quantize", str(single_file), "--base", str(base), "--out", str(out), *CHEAP]) == 2
    assert capsys.readouterr().err.startswith(f"error: {out} lies inside {base}, the folder of the base pipeline "
                                              "that calibrates it")  # fmt: skip
    assert not out.exists() and sorted(p.name for p in out.parent.iterdir()) == [
        "config.json", "diffusion_pytorch_model.safetensors"]  # fmt: skip


def test_the_wizard_refuses_a_models_folder_inside_the_source_as_it_names_the_output(tmp_path):
    """The wizard's output is a new name in the app's models folder: only a data folder inside the source pipeline
    puts it among the model's files. Refused as the output is named, its lock let go, in the wizard's words."""
    pytest.importorskip("PySide6", reason="the wizard's side (app/) needs Qt; the GPU machine's Python has none")
    from app.quantize_outputs import name_run_output
    from app.quantize_worker import run_error
    from gpu.errors import OutputIsInput
    from gpu.quantizer import QuantizeConfig

    pipeline = shutil.copytree(DEMO, tmp_path / "demo")
    models = pipeline / "data" / "models"
    models.mkdir(parents=True)
    with pytest.raises(OutputIsInput, match="lies inside .*, the folder of the model this run quantizes") as info:
        name_run_output(models, "demo-svdquant-int4-r32", str(pipeline), QuantizeConfig(calib_prompts=2), False)
    assert list(models.iterdir()) == []  # the name's lock was let go of
    error, settings_can_fix = run_error(info.value, models)
    assert "another data folder" in error.hint and "--out" not in error.hint and not settings_can_fix


def _shared_te2(root: Path) -> Path:
    """A copy of the demo pipeline at ``root/flux`` whose text_encoder_2 is a link to ``root/shared_te2``."""
    pipeline = shutil.copytree(DEMO, root / "flux")
    shutil.move(pipeline / "text_encoder_2", root / "shared_te2")
    (pipeline / "text_encoder_2").symlink_to(Path("..") / "shared_te2", target_is_directory=True)
    return pipeline


@pytest.mark.parametrize("as_base", [False, True])
def test_a_linked_subfolders_files_are_never_the_output(tmp_path, single_file, as_base, capsys):
    """A subfolder that is a link (a T5 shared between pipelines) is read as the pipeline's own: its weights were
    replaced (rglob does not enter a linked folder), and a new file among them was let through."""
    from main import main

    pipeline = _shared_te2(tmp_path)
    t5 = tmp_path / "shared_te2" / "model.safetensors"
    before = t5.read_bytes()
    source = [str(single_file), "--base", str(pipeline)] if as_base else [str(pipeline)]
    assert main(["quantize", *source, "--out", str(t5), "--overwrite", *CHEAP]) == 2
    assert f"error: {t5} is a file of the " in capsys.readouterr().err
    assert t5.read_bytes() == before
    new = tmp_path / "shared_te2" / "int4.safetensors"
    assert main(["quantize", *source, "--out", str(new), *CHEAP]) == 2
    assert f"error: {new} lies inside {tmp_path / 'shared_te2'}, a folder {pipeline} links to" in \
        capsys.readouterr().err  # fmt: skip
    assert sorted(p.name for p in t5.parent.iterdir()) == ["config.json", "model.safetensors"]


def test_a_link_loop_in_the_pipeline_is_walked_once(tmp_path):
    """A link back up the pipeline's own tree is not walked forever; an output outside it stays allowed."""
    from gpu.library import ModelLibrary
    from gpu.streaming.base_pipeline import check_output_not_read

    pipeline = _shared_te2(tmp_path)
    (tmp_path / "shared_te2" / "up").symlink_to(Path("..") / "flux", target_is_directory=True)
    check_output_not_read(tmp_path / "out.safetensors", pipeline, None, ModelLibrary())
