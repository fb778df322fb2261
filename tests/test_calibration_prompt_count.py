"""A run asking for more calibration prompts than its set holds uses them all, and says so; its resume key is that of
a run asking for exactly as many (it makes the same blocks), and parts folders of earlier runs, whose key kept the
number asked for, still resume. It said nothing (the model file records the prompts used), and each number asked
for beyond the set gave another key: a run of 512 of the 145 built-in prompts resumed from no other."""

from __future__ import annotations

import json
import re

import pytest
import torch

from gpu.errors import Cancelled
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, QuantizeEvent, quantize_model
from gpu.streaming.resume import resumes_from, settings_key
from gpu.streaming.run_inputs import resume_key

DEMO = resources_dir() / "models" / "demo"  # its own set: 256 prompts
CPU = torch.device("cpu")


def _key(lib: ModelLibrary, prompts: int):
    return resume_key(DEMO, QuantizeConfig(calib_prompts=prompts), lib, CPU)


def test_a_run_asking_for_more_prompts_than_the_set_holds_says_it_uses_them_all(tmp_path):
    events: list[QuantizeEvent] = []
    said = "300 calibration prompts asked, 256 available (the model's own calibration prompts): all 256 used"
    with pytest.raises(Cancelled):  # once the text encoders load: said before, and the rest is any run's
        quantize_model(DEMO, tmp_path / "m.safetensors", QuantizeConfig(calib_prompts=300), on_event=events.append,
                       library=ModelLibrary(tmp_path), device=CPU,
                       should_cancel=lambda: any(e.message == "loading text encoders" for e in events))  # fmt: skip
    assert [e.message for e in events if "available" in e.message] == [said]


def test_prompts_asked_for_beyond_the_set_do_not_change_the_resume_key(tmp_path):
    lib = ModelLibrary(tmp_path)
    assert _key(lib, 300).key == _key(lib, 256).key == _key(lib, 1000).key
    assert _key(lib, 255).key != _key(lib, 256).key
    assert _key(lib, 300).settings["quantization"]["calib_prompts"] == 256  # what the run uses


def test_a_parts_folder_of_a_run_that_asked_for_more_prompts_than_the_set_holds_still_resumes(tmp_path):
    """As the engine wrote it before: the number asked for in its settings, and its key theirs."""
    lib = ModelLibrary(tmp_path / "lib")
    settings = json.loads(json.dumps(_key(lib, 256).settings))
    settings["quantization"]["calib_prompts"] = 512  # the wizard's field allowed 512
    parts = tmp_path / "m.safetensors.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"key": settings_key(settings), "settings": settings,
                                                     "done": {}}))  # fmt: skip
    for prompts in (512, 256, 400):
        assert resumes_from(parts, _key(lib, prompts)) is True, prompts
    assert resumes_from(parts, _key(lib, 64)) is False  # fewer prompts: other samples, other blocks


def test_a_calibration_prompts_entry_that_names_no_file_is_said_not_raised(tmp_path):
    """A hand-edited nibble.json ("calibration_prompts": 5) raised a TypeError, in a Qt slot of the wizard too,
    which then showed the previous source's prompts."""
    from app.quantize_source import calibration_set
    from gpu.calibration_set import available_prompts
    from gpu.errors import ModelLoadError
    from gpu.model_files import pipeline_defaults

    (tmp_path / "nibble.json").write_text(json.dumps({"calibration_prompts": 5}))
    with pytest.raises(ModelLoadError, match=f"nibble.json in {tmp_path}: calibration_prompts is 5, not a file name"):
        available_prompts(tmp_path, pipeline_defaults(tmp_path))
    with pytest.raises(ModelLoadError, match="calibration_prompts is 5"):  # the wizard's source page says so
        calibration_set(tmp_path)


def test_a_steps_entry_that_is_no_number_is_said_not_raised(tmp_path):
    """A hand-edited nibble.json ("steps": "16 steps") raised a ValueError: in a Qt slot of the wizard (which then
    let the user go on), and as a traceback from main.py quantize."""
    from app.quantize_source import calibration_set
    from gpu.errors import ModelLoadError
    from main import main

    folder = tmp_path / "demo-steps"
    import shutil

    shutil.copytree(DEMO, folder)
    settings = json.loads((folder / "nibble.json").read_text())
    (folder / "nibble.json").write_text(json.dumps({**settings, "steps": "16 steps"}))
    with pytest.raises(ModelLoadError, match="nibble.json: steps is '16 steps'"):  # the wizard's source page says so
        calibration_set(folder)
    # the file named whole: a single file's run reads its base's (R51)
    with pytest.raises(ModelLoadError, match=re.escape(f"{folder / 'nibble.json'}: steps is '16 steps', not a whole")):
        quantize_model(folder, tmp_path / "m.safetensors", QuantizeConfig(calib_prompts=2),
                       library=ModelLibrary(tmp_path), device=CPU)  # fmt: skip
    assert main(["--data-dir", str(tmp_path / "data"), "quantize", str(folder), "--out",
                 str(tmp_path / "n.safetensors"), "--calib-prompts", "2"]) == 2  # fmt: skip
