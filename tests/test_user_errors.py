"""Bad input and failing disks give one clear error naming the problem, and never lose what was saved:
the atomic writer, the model library file, generation settings, quantization settings, broken LoRAs."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from gpu.atomic import atomic_path, atomic_write_bytes
from gpu.errors import BadRequestError, OutputError
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService, InvalidOutput
from gpu.library import ModelLibrary
from gpu.quantizer import QuantizeConfig, quantize_model
from gpu.safetensors_header import PICKLE_PROBLEM


# -- the atomic writer ------------------------------------------------------------------------------------------
def test_a_failed_write_names_the_target_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "image.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputError) as err, atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(err.value) == f"cannot write {target}: No space left on device"
    assert "free some disk space" in err.value.hint
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_safetensors_disk_errors_become_output_errors(tmp_path):
    from safetensors import SafetensorError

    target = tmp_path / "model.safetensors"
    with pytest.raises(OutputError, match="model.safetensors: No space left on device"), atomic_path(target):
        raise SafetensorError("Error while serializing: No space left on device (os error 28)")
    assert not target.exists()
    with pytest.raises(SafetensorError), atomic_path(target):  # not a disk error: passed on as it is
        raise SafetensorError("invalid header")


_KILLED_WRITER = """
import sys, torch
from gpu.atomic import atomic_path
from safetensors.torch import save_file
with atomic_path(sys.argv[1]) as tmp:
    save_file({"w": torch.ones(100 * 2**20)}, str(tmp))  # 400 MB: long enough to be caught mid-write
"""


def test_a_kill_during_a_safetensors_write_leaves_only_what_the_next_run_removes(tmp_path):
    """safetensors' save_file writes its own ``.tmp<random>`` beside the path it is given, then renames it.
    Given the temp file beside the target, a kill mid-write left a model-sized ``.tmpXXXXXX`` in the user's
    folder, which nothing could safely recognise. It now lands in atomic_path's private folder, which
    ``remove_stale_temps`` (the quantizer's rerun) deletes."""
    import re
    import signal
    import subprocess
    import sys
    import time

    from gpu.atomic import SCRATCH_NAME, remove_stale_temps

    target = tmp_path / "model.safetensors"
    (tmp_path / "notes.txt").write_text("the user's")
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=os.getcwd())
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and writer.poll() is None:
            if any(re.fullmatch(r"\.tmp\w{6}", f.name) for f in tmp_path.rglob("*")):
                writer.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL, "the writer finished before its temp file was seen"
    assert not target.exists()
    beside = {f.name for f in tmp_path.iterdir()} - {"notes.txt"}
    assert len(beside) == 1 and SCRATCH_NAME.match(beside.pop())
    remove_stale_temps(target)
    assert [f.name for f in tmp_path.iterdir()] == ["notes.txt"]


def test_windows_error_codes_become_the_same_plain_messages():
    """On Windows safetensors reports a system error code ("os error 112" for a full disk), which was read as
    an errno: "Unknown error 112" with no hint. A file held open by another program (sharing violation) was
    called a folder one cannot write to."""
    from safetensors import SafetensorError

    from gpu.os_errors import os_error_of as _os_error_of
    from gpu.os_errors import output_error as _output_error

    target = Path("model.safetensors")
    full = _os_error_of(SafetensorError("Error while serializing: (os error 112)"), windows=True)
    assert full is not None and full.errno == errno.ENOSPC
    err = _output_error(target, full)
    assert str(err) == "cannot write model.safetensors: No space left on device" and "free some disk" in err.hint
    held = _os_error_of(SafetensorError("Error while serializing: (os error 32)"), windows=True)
    assert held is not None
    err = _output_error(target, held)
    assert str(err) == "cannot write model.safetensors: the file is open in another program"
    assert err.hint == "close the program that has it open, then try again"
    native = PermissionError(errno.EACCES, "The process cannot access the file")
    native.winerror = 32  # as os.replace raises it on Windows
    assert str(_output_error(target, native)).endswith("the file is open in another program")
    unknown = _os_error_of(SafetensorError("(os error 1234)"), windows=True)
    assert unknown is not None and str(_output_error(target, unknown)).endswith("Windows error 1234")
    linux = _os_error_of(SafetensorError("(os error 28)"), windows=False)
    assert linux is not None and linux.errno == errno.ENOSPC


def test_a_rename_refused_for_a_moment_on_windows_is_retried(tmp_path, monkeypatch):
    """On Windows an antivirus or indexer holding a just-written file for a moment made the final rename fail
    with 'access denied' / 'in use', losing the write. It is retried briefly there (and only there)."""
    from gpu.atomic import replace_file

    src, dst = tmp_path / "new.png", tmp_path / "image.png"
    real_replace = os.replace
    failures = [2]

    def held_for_a_moment(a, b):
        if failures[0]:
            failures[0] -= 1
            err = PermissionError(errno.EACCES, "The process cannot access the file")
            err.winerror = 32  # as Windows reports a sharing violation
            raise err
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", held_for_a_moment)
    slept: list[float] = []
    src.write_bytes(b"png")
    replace_file(src, dst, windows=True, sleep=slept.append)
    assert dst.read_bytes() == b"png" and slept == [0.05, 0.1]
    src.write_bytes(b"png2")
    failures[0] = 1
    with pytest.raises(PermissionError):  # elsewhere a permission error is what it says: no retry
        replace_file(src, dst, windows=False, sleep=slept.append)
    failures[0] = 100
    with pytest.raises(PermissionError):  # held for good: given up after about 1.5 s
        replace_file(src, dst, windows=True, sleep=slept.append)
    assert len(slept) == 2 + 5 and dst.read_bytes() == b"png"


@pytest.mark.parametrize("name", ["CON.png", "nul.safetensors", "com1.png", "LPT9", "aux .png"])
def test_windows_device_names_are_refused_before_writing(tmp_path, name):
    """'--out CON.png' on Windows wrote the image to the console device: no file, and no error."""
    from gpu.output_names import check_output_path

    with pytest.raises(OutputError, match=f"{name} is a device name on Windows, not a file name"):
        check_output_path(tmp_path / name, windows=True)
    check_output_path(tmp_path / name, windows=False)  # an ordinary name elsewhere
    for fine in ("console.png", "CONTENT.png", "com10.png", "my-CON.png"):
        check_output_path(tmp_path / fine, windows=True)


def test_a_folder_in_the_way_is_named_before_writing(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(OutputError, match="out.png is a folder"):
        atomic_write_bytes(tmp_path / "out.png", b"x")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic_write_bytes(tmp_path / "file" / "sub" / "out.png", b"x")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_files_get_ordinary_permissions_and_replaced_files_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        new = atomic_write_bytes(tmp_path / "new.png", b"x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~0o022
        kept = tmp_path / "kept.json"
        kept.write_bytes(b"{}")
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"{}")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


# -- the model library file -------------------------------------------------------------------------------------
DAMAGED_LIBRARIES = [b"[]", b"null", b"5", b'"x"', b"\xff\xfe\x00garbage", b'{"models": [{"name": 1}]}']


@pytest.mark.parametrize("content", DAMAGED_LIBRARIES)
def test_a_damaged_library_file_is_kept_aside_and_the_builtins_still_work(tmp_path, content):
    (tmp_path / "library.json").write_bytes(content)
    names = [e.name for e in ModelLibrary(tmp_path).entries()]
    assert "demo" in names
    damaged = list(tmp_path.glob("library.json.damaged-*"))
    assert len(damaged) == 1 and damaged[0].read_bytes() == content


def test_a_damaged_or_newer_library_file_is_told_not_only_logged(tmp_path):
    """The library kept a damaged file aside, and rewrote a newer version's file without the keys it does not
    know (that version's pinned flags, its own fields), telling nobody: the user saw models vanish."""
    library = ModelLibrary(tmp_path)
    (tmp_path / "library.json").write_bytes(b"{" * 100_000)  # nested past the parser's limit: was a traceback
    assert "demo" in [e.name for e in library.entries()]
    (notice,) = library.take_notices()
    (kept,) = tmp_path.glob("library.json.damaged-*")
    assert kept.name in str(notice) and "add your models again" in notice.hint
    assert library.take_notices() == []  # said once

    newer = {"version": 7, "sort": "recent", "models": [{"name": "old", "path": "/m/old", "pinned": True}]}
    raw = json.dumps(newer).encode()
    (tmp_path / "library.json").write_bytes(raw)
    assert "old" in [e.name for e in library.entries()]  # read for what this version knows
    assert library.take_notices() == [] and not list(tmp_path.glob("library.json.v7-*"))  # reading changes nothing
    demo_file = tmp_path / "mine.safetensors"
    demo_file.write_bytes((Path(__file__).parents[1] / "resources/models/demo-int4.safetensors").read_bytes())
    library.add(demo_file)
    (copy,) = tmp_path.glob("library.json.v7-*")
    assert copy.read_bytes() == raw  # the newer version's file as it was
    (notice,) = library.take_notices()
    assert "newer version" in str(notice) and copy.name in str(notice)
    saved = json.loads((tmp_path / "library.json").read_text())
    assert saved["version"] == 1 and [m["name"] for m in saved["models"]] == ["old", "mine"]
    library.remove("mine")  # a version-1 file now: nothing more to keep
    assert len(list(tmp_path.glob("library.json.v7-*"))) == 1 and library.take_notices() == []


_READ_LIBRARY = """
import sys
from pathlib import Path
from gpu.errors import UserError
from gpu.library import ModelLibrary
try:
    ModelLibrary(Path(sys.argv[1])).resolve("demo")
except UserError as err:
    print("UserError:", err)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_an_unreadable_library_file_is_named_and_left_where_it_is(tmp_path):
    import shutil
    import subprocess
    import sys

    library = tmp_path / "library.json"
    library.write_text(json.dumps({"version": 1, "models": [{"name": "mine", "path": "/models/mine"}]}))
    library.chmod(0)
    command = [sys.executable, "-c", _READ_LIBRARY, str(tmp_path)]
    if os.geteuid() == 0:  # root reads anything: drop the capability that lets it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == f"UserError: cannot read the model library {library}: Permission denied", done.stderr
    library.chmod(0o644)  # not damaged, so not moved aside nor replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library.json"]
    assert "/models/mine" in library.read_text()


# -- generation settings ----------------------------------------------------------------------------------------
def test_broken_model_defaults_and_out_of_range_seeds_are_named(tiny_flux, tmp_path):
    import shutil

    folder = tmp_path / "tiny-broken"
    shutil.copytree(tiny_flux, folder)
    (folder / "nibble.json").write_text(json.dumps({"width": "abc", "steps": 2}))
    service = GenerationService()
    entry = service.library.resolve(str(folder))
    with pytest.raises(BadRequestError, match=r"width 'abc' \(model tiny-broken\) is not a number"):
        service.resolve_settings(GenerationRequest("x", model=str(folder), height=64), entry)
    for length in (0, 1000):  # were a ValueError traceback from inside the pipeline
        (folder / "nibble.json").write_text(json.dumps({"max_sequence_length": length}))
        entry = service.library.resolve(str(folder))
        with pytest.raises(BadRequestError, match=f"max_sequence_length {length} \\(model tiny-broken\\) is not"):
            service.resolve_settings(GenerationRequest("x", model=str(folder), width=64, height=64), entry)
    (folder / "nibble.json").write_text(json.dumps({"width": "abc", "steps": 2}))
    entry = service.library.resolve(str(folder))
    ok = GenerationRequest("x", model=str(folder), width=64, height=64, seed=2**63 - 2, batch_count=2)
    assert service.resolve_settings(ok, entry)["seed"] == 2**63 - 2
    past = GenerationRequest("x", model=str(folder), width=64, height=64, seed=2**63 - 1, batch_count=2)
    with pytest.raises(BadRequestError, match="runs past 2\\^63-1"):
        service.resolve_settings(past, entry)
    with pytest.raises(BadRequestError, match="seed inf is not a number"):
        service.resolve_settings(GenerationRequest("x", model=str(folder), seed=float("inf")), entry)
    with pytest.raises(BadRequestError, match="applies to SVDQ files only"):
        service.resolve_settings(GenerationRequest("x", model=str(folder), base=str(tiny_flux)), entry)



@pytest.mark.parametrize(("defaults", "said"), [
    ({"width": 100}, "width 100 (model tiny-broken) is not possible: use a multiple of 16 between 64 and 2048"),
    ({"height": 4096}, "height 4096 (model tiny-broken) is not possible: use a multiple of 16 between 64 and 2048"),
    ({"steps": 0}, "steps 0 (model tiny-broken) is not possible: use 1 to 500"),
    ({"guidance": 500}, "guidance 500.0 (model tiny-broken) is not possible: use 0 to 50"),
])
def test_an_impossible_model_default_is_the_models_to_correct(tiny_flux, tmp_path, defaults, said):
    """nibble.json {"width": 100} was said "width 100 is not possible", as though the user had typed it: a default out
    of range names the model and the nibble.json to correct, as a bad max_sequence_length does; the same value typed
    by the user is said as the user's."""
    import shutil

    folder = tmp_path / "tiny-broken"
    shutil.copytree(tiny_flux, folder)
    (folder / "nibble.json").write_text(json.dumps(defaults))
    service = GenerationService()
    entry = service.library.resolve(str(folder))
    sizes = {side: 64 for side in ("width", "height") if side not in defaults}
    with pytest.raises(BadRequestError) as raised:
        service.resolve_settings(GenerationRequest("x", model=str(folder), **sizes), entry)
    assert (str(raised.value), raised.value.hint) == (said, f"correct it in {folder / 'nibble.json'}")
    typed = {"width": 64, "height": 64, "steps": 1, "guidance": 3.5, **defaults}
    with pytest.raises(BadRequestError) as raised:
        service.resolve_settings(GenerationRequest("x", model=str(folder), **typed), entry)
    assert (str(raised.value), raised.value.hint) == (said.replace(" (model tiny-broken)", ""), "")

def test_a_lora_that_blows_up_the_latents_stops_the_job_and_is_named(tmp_path):
    from gpu.demo.train_lora import OUT as SHIPPED_LORA

    tensors = load_file(SHIPPED_LORA)
    huge = tmp_path / "huge.safetensors"
    save_file({k: v * 1e30 if "lora_B" in k else v for k, v in tensors.items()}, huge)  # finite, absurd
    request = GenerationRequest("a red circle", model="demo", steps=2, width=64, height=64, loras=[(str(huge), 1.0)])
    with pytest.raises(InvalidOutput) as err:
        GenerationService().generate(request)
    assert "huge" in str(err.value) and "NaN or infinite" in str(err.value) and "strength" in err.value.hint


# -- quantization settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"calib_steps": -1}, "-1 calibration steps"), ({"calib_steps": 100_000}, "use 1 to 500"),
     ({"seed": 10**20}, "seed"), ({"calib_prompts": 10**6}, "calibration prompts")],
)  # fmt: skip
def test_impossible_quantize_settings_are_refused(kwargs, words):
    with pytest.raises(BadRequestError, match=words):
        QuantizeConfig(**kwargs).validate()


def test_a_low_rank_method_at_rank_0_is_refused_under_that_name():
    """"svd" and "lorc" at rank 0 made the naive model, and "svdquant" the SmoothQuant one, each under a second
    name (and file name): the run now names the method that makes it. The methods without a branch ignore the rank."""
    from gpu.quantize_defaults import RANK_METHODS

    for method, same in (("svdquant", "smoothquant"), ("svd", "naive"), ("lorc", "naive")):
        with pytest.raises(BadRequestError, match=f"^{method} at rank 0 has no low-rank branch: it makes the same "
                                                  f"model as {same}$") as err:  # fmt: skip
            QuantizeConfig(method=method, rank=0).validate()
        assert err.value.hint == f"use --method {same} for that model, or a rank of 1 or more"
        QuantizeConfig(method=method, rank=1).validate()
    assert set(RANK_METHODS) == {"svdquant", "svd", "lorc"}
    for method in ("naive", "smoothquant", "nf4"):
        QuantizeConfig(method=method, rank=0).validate()


@pytest.mark.parametrize("rank", [1000, 129])
def test_a_rank_wider_than_the_layers_is_refused_before_any_work(tiny_flux, tmp_path, rank):
    """Rank 129 to 256 on 256x256 layers (the wizard offers up to 256) made a "4-bit" model larger than the
    16-bit one: a branch of r * (256 + 256) numbers holds more than the 256 * 256 weight from r = 129 on."""
    from gpu.streaming.run_inputs import resume_key

    out = tmp_path / f"r{rank}.safetensors"
    events = []
    with pytest.raises(BadRequestError, match=f"rank {rank} would make the 16-bit low-rank branch of layer ") as err:
        quantize_model(tiny_flux, out, QuantizeConfig(rank=rank, calib_prompts=2, calib_steps=2),
                       library=ModelLibrary(tmp_path / "lib"), on_event=events.append)  # fmt: skip
    assert "(256x256) larger than its 16-bit weight" in str(err.value) and err.value.hint == "use a rank of at most 128"
    assert not out.exists() and not any("calibrat" in e.message for e in events)
    assert resume_key(tiny_flux, QuantizeConfig(rank=128), ModelLibrary(tmp_path / "lib")) is not None  # the limit


def test_a_config_that_does_not_match_its_weights_is_a_load_error(tiny_flux, tmp_path):
    import shutil

    from gpu.errors import ModelLoadError

    folder = tmp_path / "mismatched"
    shutil.copytree(tiny_flux, folder)
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_layers": 5}))
    request = GenerationRequest("x", model=str(folder), steps=1, width=64, height=64)
    with pytest.raises(ModelLoadError, match="mismatched: the transformer weights do not match its config.json"):
        GenerationService().generate(request)


def test_scratch_writes_name_the_file_on_a_full_disk(tmp_path):
    from safetensors import SafetensorError

    from gpu.atomic import output_errors

    with pytest.raises(OutputError, match="act/3.safetensors: No space left on device"):
        with output_errors(tmp_path / "act" / "3.safetensors"):
            raise SafetensorError("Error while serializing: No space left on device (os error 28)")


def test_an_empty_or_dot_model_is_named(tmp_path, monkeypatch):
    from gpu.errors import ModelLoadError

    library = ModelLibrary(tmp_path / "lib")
    with pytest.raises(ModelLoadError, match="the name is empty"):
        library.resolve("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=f"^{tmp_path}: not a diffusers pipeline folder"):
        library.resolve(".")


@pytest.mark.parametrize("component", ["vae", "tokenizer_2", "scheduler"])
def test_a_model_folder_without_a_component_is_named_incomplete(tiny_flux, tmp_path, component):
    import shutil

    from gpu.errors import ModelLoadError

    folder = tmp_path / "tiny-partial"
    shutil.copytree(tiny_flux, folder)
    shutil.rmtree(folder / component)
    request = GenerationRequest("x", model=str(folder), steps=1, width=64, height=64)
    # a missing tokenizer used to load a default one and change the images without a word
    with pytest.raises(ModelLoadError, match=f"model tiny-partial is incomplete: folder {component}/ is missing"):
        GenerationService().generate(request)
    (folder / component).mkdir()
    with pytest.raises(ModelLoadError, match=f"folder {component}/ is empty"):
        GenerationService().generate(request)
    quantized = GenerationRequest("x", model="demo-int4", base=str(folder), steps=1, width=64, height=64)
    with pytest.raises(ModelLoadError, match=f"its base pipeline {folder} is incomplete: folder {component}/"):
        GenerationService().generate(quantized)


def test_damaged_transformer_weights_in_a_model_folder_are_named(tiny_flux, tmp_path):
    import shutil

    from gpu.errors import ModelLoadError

    folder = tmp_path / "tiny-damaged"
    shutil.copytree(tiny_flux, folder)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size - 100)
    library = ModelLibrary(tmp_path / "lib")
    message = "tiny-damaged: transformer/diffusion_pytorch_model.safetensors: truncated: the header describes"
    with pytest.raises(ModelLoadError, match=message):
        library.resolve(str(folder))
    weights.write_bytes(b"")  # was a struct.error traceback
    with pytest.raises(ModelLoadError, match="diffusion_pytorch_model.safetensors: not a safetensors file"):
        library.resolve(str(folder))


def test_a_prompt_that_is_not_utf8_is_named_before_the_model_loads(tmp_path, capsys):
    from main import main

    # What Python makes of a Latin-1 "café" typed into a UTF-8 terminal: the tokenizers raised a TypeError.
    args = ["generate", "caf\udce9", "--steps", "1", "--out", str(tmp_path / "x.png")]
    assert main(args) == 2
    assert "error: the prompt is not valid text: the byte 0xe9 at character 4" in capsys.readouterr().err
    with pytest.raises(BadRequestError, match="negative prompt is not valid text: '\\\\ud800'"):
        GenerationService().generate(GenerationRequest("x", negative_prompt="\ud800", steps=1))
    assert not (tmp_path / "x.png").exists()


def test_quantize_never_replaces_an_existing_file_unless_asked(tmp_path, capsys):
    from main import main

    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"the user's own model")
    args = ["quantize", "demo", "--out", str(mine), "--calib-prompts", "1", "--rank", "1000"]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: {mine} exists already (give another --out, or add --overwrite")
    assert mine.read_bytes() == b"the user's own model" and sorted(tmp_path.iterdir()) == [mine]
    assert main([*args, "--overwrite"]) == 2  # past the check: stops at the next one, the rank
    assert "rank 1000 would make the 16-bit low-rank branch of layer" in capsys.readouterr().err


def test_quantize_checks_for_an_existing_file_under_the_output_lock(tmp_path, capsys, monkeypatch):
    """The CLI looked for an existing OUT before the engine took the output's lock: a run on the same OUT that
    finished in between (and released the lock) was then overwritten without --overwrite."""
    import contextlib

    import gpu.streaming.engine as engine
    from main import main

    out = tmp_path / "o.safetensors"
    real_lock = engine.output_lock

    @contextlib.contextmanager
    def other_run_finishes_first(target, what, **kw):
        out.write_bytes(b"the other run's model")  # it wrote its file and let go of the lock just now
        with real_lock(target, what, **kw):
            yield

    monkeypatch.setattr(engine, "output_lock", other_run_finishes_first)
    assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1", "--rank", "8"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {out} exists already")
    assert out.read_bytes() == b"the other run's model"


def test_a_lora_folder_is_named_a_folder_not_missing(tmp_path):
    from gpu.lora import LoraError, read_lora

    with pytest.raises(LoraError, match=f"LoRA {tmp_path} is a folder, not a file"):  # said "does not exist"
        read_lora(tmp_path)


# -- the per-output lock ----------------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_file_system_without_locks_does_not_block_writing(tmp_path, monkeypatch):
    """Some network mounts answer flock with ENOLCK / EOPNOTSUPP: quantizing onto them must still work (unguarded),
    while a real I/O failure is still named."""
    import fcntl

    from gpu.output_lock import output_lock

    target = tmp_path / "model.safetensors"

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with output_lock(target, "quantize run"):
        atomic_write_bytes(target, b"model")
    assert target.read_bytes() == b"model" and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]

    def broken(fd: int, op: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OutputError, match="cannot write .*model.safetensors: Input/output error"):
        with output_lock(target, "quantize run"):
            pass


def test_the_output_lock_makes_folders_deeper_than_pythons_recursion_limit(tmp_path, deep_path):
    """The lock made OUT's folders with pathlib's mkdir(parents=True), which recurses once per folder: a quantize
    run whose --out was 1100 folders deep (within the system's path limit) ended in a RecursionError traceback. It
    makes them as atomic writes do (``gpu.output_folders.make_folders``), and takes them back when it ends."""
    from gpu.output_lock import lock_path, output_lock

    target = deep_path(1100, "model.safetensors")  # a tree the lock leaves is removed by the fixture
    with output_lock(target, "quantize run"):
        assert lock_path(target).is_file()
    assert sorted(tmp_path.iterdir()) == []  # the folders it made, and its lock file, are gone


def test_a_refused_quantize_run_leaves_no_new_folders_behind(tmp_path, capsys):
    """The output lock made OUT's folder tree before the source and settings were checked: a run refused for an
    unknown model or an impossible rank left empty folders the user never asked for. A run that writes keeps
    its folder, and so does a folder that was there before."""
    from gpu.output_lock import output_lock
    from main import main

    kept = tmp_path / "kept"
    kept.mkdir()
    out = kept / "new" / "deeper" / "out.safetensors"
    assert main(["quantize", "no-such-model", "--out", str(out)]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err
    assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1", "--rank", "1000"]) == 2
    assert "rank 1000 would make the 16-bit low-rank branch of layer" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == [kept]

    with output_lock(out, "quantize run"):
        atomic_write_bytes(out, b"model")
    assert out.read_bytes() == b"model" and sorted(out.parent.iterdir()) == [out]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_the_lock_file_goes_with_its_run_where_an_open_file_cannot_be_removed(tmp_path, monkeypatch):
    """On Windows the lock file was unlinked while still open, which Windows refuses: every run left a visible
    '.<name>.lock' and its new output folder. Here an unlink refuses files this process holds open, as there."""
    import gpu.output_lock
    from gpu.output_lock import output_lock

    real_unlink = os.unlink

    def windows_unlink(path) -> None:
        held = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        if os.path.realpath(path) in held:
            raise PermissionError(errno.EACCES, "The process cannot access the file", str(path))
        real_unlink(path)

    monkeypatch.setattr(gpu.output_lock.os, "unlink", windows_unlink)
    out = tmp_path / "new" / "out.safetensors"
    with output_lock(out, "quantize run", windows=True):
        assert (out.parent / ".out.safetensors.lock").is_file()
    assert list(tmp_path.iterdir()) == []  # the lock file, then the folder it made


def test_a_file_that_cannot_be_quantized_is_named_for_what_it_is(tmp_path, capsys):
    """Without --base, a file that is no FLUX.1 checkpoint was read as a model to generate with: a LoRA was
    'not an SVDQ checkpoint ... not quantized models', as if quantizing needed an already quantized model."""
    import torch

    from main import main

    lora = tmp_path / "style.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 8)}, str(lora))
    part = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({"transformer_blocks.0.attn.to_q.weight": torch.zeros(8, 8)}, str(part))
    pickled = tmp_path / "model.ckpt"
    pickled.write_bytes(b"\x80\x04\x95 not loaded, only named")
    for source, words in [(lora, "style.safetensors: a LoRA, not a model"),
                          (part, f"{part.name}: a FLUX transformer in diffusers layout"),
                          (pickled, f"model.ckpt: {PICKLE_PROBLEM}")]:  # fmt: skip
        assert main(["quantize", str(source), "--out", str(tmp_path / "q.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {words}") and "SVDQ" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [part.name, "model.ckpt", "style.safetensors"]


def test_quantize_refuses_an_output_name_no_model_reader_takes(tmp_path, capsys):
    """quantize --out m.png worked for minutes (hours for FLUX.1) and wrote a model that generate --model, the
    library and the app then refused ("not a model"). A folder as --out was told to try "out.png"."""
    from main import main

    for name in ["m.png", "m", "M.SAFETENSORS"]:
        out = tmp_path / name
        assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1"]) == 2
        stem = Path(name).stem
        assert capsys.readouterr().err == (f"error: --out {out}: models are written as .safetensors files (use a "
                                           f"name ending in .safetensors, e.g. {stem}.safetensors)\n")  # fmt: skip
    assert main(["quantize", "demo", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith(f"(for example {tmp_path / 'out.safetensors'})\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("component", ["text_encoder", "text_encoder_2"])
def test_a_damaged_text_encoder_file_is_named_by_generate_and_quantize(tiny_flux, tmp_path, component):
    """transformers passes safetensors' own error on ("incomplete metadata, file not fully covered"), which
    neither the pipeline loader nor the quantizer's text-encoder loader caught: a traceback, naming no file."""
    import shutil

    from gpu.errors import ModelLoadError

    folder = tmp_path / "tiny-damaged"
    shutil.copytree(tiny_flux, folder)
    weights = folder / component / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 100)
    # named as the model is read, before anything loads (every component's headers are checked there)
    said = f"tiny-damaged: {component}/model.safetensors: truncated: the header describes"
    with pytest.raises(ModelLoadError, match=re.escape(said)) as err:
        GenerationService().generate(GenerationRequest("x", model=str(folder), steps=1, width=64, height=64))
    assert err.value.hint == "copy or download the model again"
    with pytest.raises(ModelLoadError, match=re.escape(said)):
        quantize_model(folder, tmp_path / "q.safetensors", QuantizeConfig(calib_prompts=1, calib_steps=1),
                       library=ModelLibrary(tmp_path / "lib"))  # fmt: skip
    assert not (tmp_path / "q.safetensors").exists()


@pytest.mark.parametrize("content", [b"{damaged", b"[16]", b"\xff\xfe not text", b"[" * 100_000],
                         ids=["not-json", "not-object", "not-utf8", "nested-past-the-parser-limit"])
def test_a_damaged_model_defaults_file_is_named_not_replaced_by_flux_defaults(tiny_flux, tmp_path, content):
    """An unreadable nibble.json was skipped without a word: the model generated with FLUX.1-dev's settings
    (1024x1024, 28 steps: for the demo model, minutes per image on a CPU instead of a second)."""
    import shutil

    from gpu.errors import ModelLoadError

    folder = tmp_path / "tiny-defaults"
    shutil.copytree(tiny_flux, folder)
    (folder / "nibble.json").write_bytes(content)
    with pytest.raises(ModelLoadError, match="model tiny-defaults: nibble.json (is damaged|holds no settings)") as err:
        GenerationService().generate(GenerationRequest("x", model=str(folder), steps=1))
    assert err.value.hint == "fix it, or delete it to use FLUX.1-dev's settings"
    with pytest.raises(ModelLoadError, match="nibble.json"):
        quantize_model(folder, tmp_path / "q.safetensors", library=ModelLibrary(tmp_path / "lib"))
    (folder / "nibble.json").unlink()  # none at all: FLUX.1-dev's settings, as documented
    assert ModelLibrary(tmp_path / "lib").resolve(str(folder)).facts.defaults["steps"] == 28


# -- pickles and hostile headers under any name ------------------------------------------------------------------
@pytest.mark.parametrize("head", [b"PK\x03\x04" + b"\0" * 60, b"\x80\x04\x95" + b"\0" * 60, b"\x80\x02}q\0."])
def test_a_pickle_under_a_safetensors_name_is_named_a_pickle(tmp_path, capsys, head):
    """A .ckpt renamed .safetensors (or a LoRA download saved under the wrong name): its magic bytes read as an
    absurd header length, and every reader called it 'truncated or not a safetensors file'."""
    from gpu.lora import LoraError, read_lora
    from main import main

    fake = tmp_path / "renamed.safetensors"
    fake.write_bytes(head)
    words = "renamed.safetensors is not a readable .safetensors LoRA file: a PyTorch pickle"
    with pytest.raises(LoraError, match=words) as e:
        read_lora(fake)
    assert "safetensors version" in e.value.hint
    assert main(["inspect", str(fake)]) == 2
    assert "renamed.safetensors: a PyTorch pickle file" in capsys.readouterr().err
    assert main(["generate", "x", "--model", str(fake), "--out", str(tmp_path / "a.png"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "a PyTorch pickle file" in err and "truncated" not in err, err
    assert fake.read_bytes() == head  # never touched


def test_a_safetensors_header_nested_past_the_parser_limit_is_named_corrupt(tmp_path, capsys):
    """json.loads raises RecursionError (no JSONDecodeError) for deep nesting: a traceback, not a message."""
    from gpu.lora import LoraError, read_lora
    from main import main

    raw = b"[" * 200_000 + b"]" * 200_000
    bad = tmp_path / "deep.safetensors"
    bad.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(LoraError, match="the header is not valid JSON"):
        read_lora(bad)
    assert main(["inspect", str(bad)]) == 2
    assert "deep.safetensors: the header is not valid JSON" in capsys.readouterr().err


def test_a_lora_file_that_went_missing_says_what_to_do(tmp_path):
    from gpu.lora import LoraError, read_lora

    with pytest.raises(LoraError) as e:
        read_lora(tmp_path / "gone.safetensors")
    assert "does not exist" in str(e.value) and "switch it off in the LoRA panel" in e.value.hint


@pytest.mark.parametrize("content, words", [(b"caf\xe9 au lait\n", "is not UTF-8 text (byte 3)"),
                                            (b"# only a comment\n\n", "holds no prompts")])  # fmt: skip
def test_a_model_calibration_prompts_file_that_cannot_be_used_is_named(tmp_path, content, words):
    """A model's own calibration_prompts file in another encoding ended the quantize run in a traceback; an
    empty one went on with no calibration prompts at all."""
    from gpu.errors import ModelLoadError
    from gpu.quantizer.calibrate import calibration_prompts

    (tmp_path / "prompts.txt").write_bytes(content)
    with pytest.raises(ModelLoadError, match=re.escape(f"{tmp_path / 'prompts.txt'} {words}")):
        calibration_prompts(tmp_path, {"calibration_prompts": "prompts.txt"}, 8)
    assert len(calibration_prompts(None, {}, 8)) == 8  # the shipped set still reads
