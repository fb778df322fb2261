"""The CLI's outputs and options are checked before any work: a name or path the file system cannot take, a bench
folder in the way, an option out of range. Each refusal is one line naming the thing, with a hint."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import gpu.errors
import gpu.generation.service
import gpu.quantizer
from gpu.atomic import SCRATCH_NAME, atomic_write_bytes, remove_stale_temps


@pytest.fixture
def no_work(monkeypatch) -> list[str]:
    """The generator and the quantizer replaced by stand-ins that record being started, then stop the command
    with a user error ('stand-in started')."""
    started: list[str] = []

    class NoService:
        def __init__(self, *args: object, **kwargs: object) -> None:
            started.append("generate")
            raise gpu.errors.BadRequestError("stand-in started")

    def no_quantize(*args: object, **kwargs: object) -> None:
        started.append("quantize")
        raise gpu.errors.BadRequestError("stand-in started")

    monkeypatch.setattr(gpu.generation.service, "GenerationService", NoService)
    monkeypatch.setattr(gpu.quantizer, "quantize_model", no_quantize)
    return started


def _refused(args: list[str], capsys) -> str:
    """The one error line ``main.py ARGS`` printed, after checking it exited 2 with nothing else on stderr."""
    from main import main

    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), (code, err)
    return err


def test_a_name_near_the_limit_is_written_its_scratch_folder_named_apart(tmp_path):
    """The scratch folder was ``.<name>.<random>.tmp``, 14 bytes longer than the name: a 243-byte name, which the
    file system takes, failed at the final write ('File name too long'), after all the work."""
    target = tmp_path / ("a" * 239 + ".png")
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_stale_scratch_folders_of_the_target_go_and_others_stay(tmp_path):
    """A killed write's scratch folder is removed by the rerun (the quantizer's), old-style ones too; another
    file's scratch folder in the same folder (another writer's, alive) is not touched."""
    from gpu.atomic import scratch_prefix

    target, other = tmp_path / "model.safetensors", tmp_path / "other.safetensors"
    ours, theirs = scratch_prefix(target) + "abcd1234.tmp", scratch_prefix(other) + "abcd1234.tmp"
    assert SCRATCH_NAME.match(ours) and SCRATCH_NAME.match(theirs) and "model" not in ours
    for name in (ours, theirs, ".model.safetensors.x1y2z3w4.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "new.safetensors").write_bytes(b"half")
    remove_stale_temps(target)
    assert [p.name for p in tmp_path.iterdir()] == [theirs]


def test_a_kill_inside_a_parts_folder_leaves_what_the_quantizer_recognises(tmp_path):
    """The quantizer deletes its parts folder only when it holds nothing but its own files: a shard write killed
    there leaves a scratch folder of the new name, which must not be taken for the user's."""
    from gpu.atomic import scratch_prefix
    from gpu.streaming.parts_folder import check_parts_folder

    parts = tmp_path / "o.safetensors.parts"
    parts.mkdir()
    (parts / (scratch_prefix(parts / "block-0001.safetensors") + "q1w2e3r4.tmp")).mkdir()
    check_parts_folder(parts)  # no OutputError
    (parts / "notes.txt").write_text("the user's")
    with pytest.raises(gpu.errors.OutputError, match="notes.txt"):
        check_parts_folder(parts)


def test_names_longer_than_the_folder_takes_are_refused_before_any_work(tmp_path, capsys, no_work):
    """A name past the 255-byte limit (or one whose parts folder, or a batch's last image, would be) failed
    with 'File name too long' only when the result was written: hours into a FLUX quantize."""
    data = ["--data-dir", str(tmp_path / "data")]
    png = tmp_path / ("b" * 252 + ".png")  # 256 bytes
    err = _refused([*data, "generate", "x", "--out", str(png)], capsys)
    assert err.startswith(f"error: cannot write {png}: the file name is 256 bytes long, more than the 255 that "
                          f"fit in {tmp_path} (choose a shorter file name)")  # fmt: skip
    batch = tmp_path / ("c" * 249 + ".png")  # 253 bytes; a batch's 100th image, c…c-99.png, 256
    from main import main

    main([*data, "generate", "x", "--out", str(batch), "--batch", "10"])  # c…c-9.png: 255 bytes
    assert no_work == ["generate"] and capsys.readouterr().err == "error: stand-in started\n"
    no_work.clear()
    err = _refused([*data, "generate", "x", "--out", str(batch), "--batch", "100"], capsys)
    assert err.startswith(f"error: cannot write {tmp_path / ('c' * 249 + '-0.png')}: the file name is 255 bytes long, "
                          f"more than the 254 that fit in {tmp_path} (a name can have 255 bytes there, and the "
                          "command keeps one 1 byte longer beside it)")  # fmt: skip
    model = tmp_path / ("d" * 238 + ".safetensors")  # 250 bytes: its 256-byte .parts folder cannot be made
    err = _refused([*data, "quantize", "demo", "--out", str(model)], capsys)
    assert err.startswith(f"error: cannot write {model}: the file name is 250 bytes long, more than the 249 ")
    assert err.endswith("); choose a shorter file name\n")
    folder = tmp_path / ("e" * 256) / "a.png"
    err = _refused([*data, "generate", "x", "--out", str(folder)], capsys)
    assert "the folder name eeee" in err and err.endswith("(choose a shorter folder name)\n")
    assert no_work == [] and sorted(tmp_path.iterdir()) == [tmp_path / "data"]


def test_a_batch_checks_the_names_it_writes_before_any_work(tmp_path, capsys, no_work):
    """A batch given --out c.png writes c-0.png, c-1.png, …: a folder at c-1.png stopped it after its first image
    (that image's work lost, the others never made), and a folder at c.png, never written, refused it."""
    from main import main

    data = ["--data-dir", str(tmp_path / "data")]
    (tmp_path / "c-1.png").mkdir()
    err = _refused([*data, "generate", "x", "--out", str(tmp_path / "c.png"), "--batch", "3"], capsys)
    assert err.startswith(f"error: {tmp_path / 'c-1.png'} is a folder; give a file name")
    assert no_work == [] and not (tmp_path / "c-0.png").exists()
    (tmp_path / "d.png").mkdir()
    main([*data, "generate", "x", "--out", str(tmp_path / "d.png"), "--batch", "2"])
    assert no_work == ["generate"] and capsys.readouterr().err == "error: stand-in started\n"
    no_work.clear()
    # A typo'd count is refused before a name is made for each of its images (2e7 of them: half an hour)
    named = []
    with pytest.MonkeyPatch.context() as patch:
        import main as cli

        patch.setattr(cli, "batch_image_path", lambda out, i: named.append(i) or out)
        err = _refused([*data, "generate", "x", "--out", str(tmp_path / "e.png"), "--batch", "20000000"], capsys)
    assert err == "error: batch count 20000000 is not possible: use 1 to 100\n" and named == [] and no_work == []


def test_a_path_too_long_is_refused_without_a_traceback(tmp_path, capsys, monkeypatch, no_work):
    """``--out d/d/…/a.png`` two thousand folders deep ended in a RecursionError traceback after the image was
    made (pathlib's mkdir recurses once per folder); past the system's path limit it is refused up front."""
    monkeypatch.chdir(tmp_path)
    deep = "d/" * 2100 + "a.png"  # 4205 bytes: past Linux's 4096
    err = _refused(["--data-dir", str(tmp_path / "data"), "generate", "x", "--out", deep], capsys)
    assert err.startswith(f"error: cannot write {deep}: the path is ") and "bytes long, more than the " in err
    assert err.endswith("(choose a shorter name, or a folder with a shorter path)\n")
    assert no_work == [] and not (tmp_path / "d").exists()


def test_a_file_deeper_than_pythons_recursion_limit_is_written(deep_path):
    """Below the system's path limit, the folders of a file 1100 deep are made (they were made by pathlib's mkdir,
    which recurses once per folder: a RecursionError traceback, after the image was made)."""
    target = deep_path(1100, "a.png")  # the fixture removes the tree: shutil.rmtree recurses too
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole"


@pytest.mark.skipif(not hasattr(os, "pathconf"), reason="the limits are asked of the file system (POSIX)")
def test_the_limits_come_from_the_folders_file_system(tmp_path, monkeypatch):
    """A file system with shorter names (eCryptfs: 143 bytes) is asked, not assumed to take 255."""
    import gpu.output_names

    real = os.pathconf
    monkeypatch.setattr(gpu.output_names.os, "pathconf", lambda p, n: 143 if n == "PC_NAME_MAX" else real(p, n))
    with pytest.raises(gpu.errors.OutputError, match="the file name is 148 bytes long, more than the 143 that fit"):
        gpu.output_names.check_output_path(tmp_path / ("f" * 144 + ".png"))
    gpu.output_names.check_output_path(tmp_path / ("f" * 139 + ".png"))


def test_where_the_system_cannot_say_names_are_counted_as_windows_counts_them(tmp_path, monkeypatch):
    """Without pathconf (Windows), names were measured in UTF-8 bytes against 255, and NTFS counts UTF-16 units:
    a 94-character Japanese name (274 bytes) that NTFS takes was refused, for every write of that name."""
    import gpu.output_names

    monkeypatch.delattr(gpu.output_names.os, "pathconf", raising=False)
    assert gpu.output_names._name_length("夜" * 90 + ".png") == (94, "characters")  # (a Linux disk cannot hold it)
    with pytest.raises(gpu.errors.OutputError, match="the file name is 257 characters long, more than the 255"):
        gpu.output_names.check_output_path(tmp_path / ("夜" * 253 + ".png"))


def test_a_path_longer_than_windows_opens_is_refused_up_front(tmp_path):
    """Without pathconf the path limit was 4096: on Windows (259 characters unless long paths are on for the
    program) a 221-character ``quantize --out`` passed the check and failed at its first write under the parts
    folder, after the calibration."""
    import gpu.output_names

    room = 259 - gpu.output_names._PATH_ROOM - len(str(tmp_path)) - 1  # characters of a name that just fits
    with pytest.raises(gpu.errors.OutputError, match=r"the path is \d+ characters long, more than the 195"):
        gpu.output_names.check_output_path(tmp_path / ("f" * (room - 3) + "é.png"), windows=True)
    gpu.output_names.check_output_path(tmp_path / ("f" * (room - 4) + ".png"), windows=True)
    gpu.output_names.check_output_path(tmp_path / ("f" * (room - 3) + "é.png"), windows=False)  # bytes, on Linux


def test_a_bench_output_folder_in_the_way_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    """``bench flux --tiny --out FILE`` ran the whole benchmark, then said 'error: FILE: File exists' (exit 2,
    no hint): the folder was made only to write the results."""
    import types

    import gpu.bench.flux_pipeline_16gb
    from gpu.errors import OutputError

    ran: list[Path] = []  # the benchmark module (6 s of imports) replaced by one that records its run
    stand_in = types.SimpleNamespace(run=lambda out_dir, **kwargs: ran.append(Path(out_dir)) or {})
    monkeypatch.setitem(sys.modules, "gpu.bench.flux", stand_in)
    a_file = tmp_path / "results"
    a_file.write_text("")
    err = _refused(["bench", "flux", "--tiny", "--out", str(a_file)], capsys)
    assert err == (f"error: cannot write the results into {a_file}: it is a file, not a folder (give --out a folder "
                   "you can write to (a missing one is made))\n")  # fmt: skip
    err = _refused(["bench", "flux", "--tiny", "--out", str(a_file / "run1")], capsys)
    assert err.startswith(f"error: cannot write the results into {a_file / 'run1'}: {a_file} is a file, not a folder")
    assert ran == []
    with pytest.raises(OutputError, match="it is a file, not a folder"):  # the other benchmarks use the same check
        gpu.bench.flux_pipeline_16gb.main(["--tiny", "--out", str(a_file)])

    from main import main

    assert main(["bench", "flux", "--tiny", "--out", str(tmp_path / "new" / "run1")]) == 0
    assert ran == [tmp_path / "new" / "run1"] and ran[0].is_dir()


def test_bench_options_out_of_range_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    """``bench flux --tiny --steps 0`` ended in a StatisticsError traceback and ``--lora-rank -5`` in a
    RuntimeError one, once the model was built; kernels' --iters 0 and --rank 2000 went to the GPU as they were."""
    import types

    ran: list[str] = []
    for what in ("flux", "kernels"):
        stand_in = types.SimpleNamespace(run=lambda out_dir, what=what, **kwargs: ran.append(what) or {})
        monkeypatch.setitem(sys.modules, f"gpu.bench.{what}", stand_in)
    out = ["--out", str(tmp_path / "bench")]
    cases = [
        (["flux", "--tiny", "--steps", "0"], "--steps 0 is not possible: use 1 to 500 (or leave --steps out for "
                                             "its default)"),
        (["flux", "--tiny", "--lora-rank", "-5"], "--lora-rank -5 is not possible: use 0 to 1024 ("),
        (["flux", "--steps", "5"], "--steps 5 is not possible: use 10 to 500 (a full-size run times at least 10; "),
        (["kernels", "--iters", "0"], "--iters 0 is not possible: use 1 to 10000 ("),
        (["kernels", "--rank", "2000"], "--rank 2000 is not possible: use 0 to 1024 ("),
    ]  # fmt: skip
    for args, words in cases:
        err = _refused(["bench", *args, *out], capsys)
        assert err.startswith(f"error: {words}"), (args, err)
    assert ran == [] and not (tmp_path / "bench").exists()
    from main import build_parser, check_bench_options, main

    assert main(["bench", "flux", "--tiny", "--steps", "1", "--lora-rank", "0", *out]) == 0 and ran == ["flux"]
    check_bench_options(build_parser().parse_args(["bench", "kernels", "--steps", "5", *out]))  # kernels: no steps


def test_a_file_that_is_no_quantized_model_is_named_for_what_it_is(tmp_path, capsys):
    """``generate --model`` a LoRA, an SDXL checkpoint or a transformer's diffusers file said only "not an SVDQ
    checkpoint ...; plain safetensors weights or LoRA files are not quantized models", with no hint, while
    quantize named each for what it is."""
    import torch
    from safetensors.torch import save_file

    def made(name: str, key: str) -> Path:
        save_file({key: torch.zeros(2, 2)}, str(tmp_path / name))
        return tmp_path / name

    cases = [
        (made("style.safetensors", "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"),
         "a LoRA, not a model (", "--lora FILE"),
        (made("sdxl.safetensors", "model.diffusion_model.input_blocks.0.0.weight"),
         "a Stable Diffusion 1.x/2.x or SDXL checkpoint (UNet), not FLUX.1 (", "Nibble Studio runs FLUX.1 models"),
        (made("diffusion_pytorch_model.safetensors", "transformer_blocks.0.attn.to_q.weight"),
         "a FLUX transformer in diffusers layout (the transformer/ part of a pipeline folder); ", "model_index.json"),
        (made("weights.safetensors", "w"), "not an SVDQ checkpoint (no 'svdq' metadata): not a quantized model (",
         "Nibble Studio runs FLUX.1 models"),
    ]  # fmt: skip
    for file, what, hint in cases:
        err = _refused(["--data-dir", str(tmp_path / "data"), "generate", "x", "--model", str(file)], capsys)
        assert err.startswith(f"error: {file.name}: {what}") and hint in err, err


def test_generate_base_takes_a_library_name_as_quantize_base_does(tmp_path, monkeypatch):
    """``generate --model moved.safetensors --base demo`` said the base was not found: --base took only a folder,
    while quantize --base takes library names. A --base that is a file was 'not found' too."""
    import shutil

    from gpu.errors import ModelLoadError
    from gpu.generation.pipeline_loader import resolve_base
    from gpu.library import ModelLibrary

    monkeypatch.chdir(tmp_path)  # no folder named "demo" here
    moved = tmp_path / "moved.safetensors"
    shutil.copy(Path(__file__).parent.parent / "resources" / "models" / "demo-int4.safetensors", moved)
    library = ModelLibrary(tmp_path / "lib")
    facts = library.resolve(str(moved)).facts
    assert resolve_base(facts, library, "demo") == library.resolve("demo").path
    with pytest.raises(ModelLoadError, match=r"^--base .*moved.safetensors is a file, not a pipeline folder$") as e:
        resolve_base(facts, library, str(moved))
    assert "model_index.json" in e.value.hint
    with pytest.raises(ModelLoadError, match=r"not found \(tried: library name 'no-such', no-such\)") as e:
        resolve_base(facts, library, "no-such")
    assert "or its library name" in e.value.hint


def test_a_reader_that_goes_away_ends_the_command_quietly(capsys, monkeypatch):
    """``main.py inspect FILE | head -1`` printed 'error: Broken pipe' (exit 2) once head had its line."""
    import io

    from main import SIGPIPE_EXIT, main

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    model = Path(__file__).parent.parent / "resources" / "models" / "demo-int4.safetensors"
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["inspect", str(model)]) == SIGPIPE_EXIT == 141
    assert capsys.readouterr().err == ""


class ImagesAtOnce:
    """The generator replaced: a request's images come at once, 8x8 pixels each, seeds S, S+1, …"""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.library = SimpleNamespace(take_notices=list, resolve=lambda name: None)
        self.loaded = None

    def resolve_settings(self, request: Any, entry: Any) -> dict[str, Any]:  # checked before the plan is said
        return {"width": 8, "height": 8}

    def describe(self, model: str, base: str | None = None, *size: int | None) -> Any:  # the plan said before loading
        return SimpleNamespace(memory_policy=SimpleNamespace(label="Memory plan: none"))

    def generate(self, request: Any, on_image: Callable[[Any], None]) -> list[Any]:
        from PIL import Image

        from gpu.generation.request import GeneratedImage

        results = []
        for i in range(request.batch_count):
            settings = {"prompt": request.prompt, "seed": request.seed + i, "width": 8, "height": 8, "steps": 1,
                        "duration_s": 0.0, "model": "stand-in", "execution_path": "none"}  # fmt: skip
            results.append(GeneratedImage(Image.new("RGB", (8, 8), "red"), settings))
            on_image(results[-1])
        return results


def test_an_image_another_run_writes_meanwhile_under_the_default_name_is_kept(tmp_path, monkeypatch, capsys):
    """Two ``generate`` runs without --out in one folder (a batch scripted with ``&``) both found nibble-0.png free
    and the later write replaced the other's image; both said 'wrote nibble-0.png' and exited 0. The name is now
    claimed as the file is published, and the line names the one used."""
    import gpu.generation.png_metadata as png_metadata
    from gpu.generation.png_metadata import read_png_text
    from main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gpu.generation.service, "GenerationService", ImagesAtOnce)
    other, encode_png = tmp_path / "nibble-0.png", png_metadata.encode_png

    def the_other_run_first(target: Path, *args: Any) -> None:  # its image lands after this run chose a name
        if not other.exists():
            other.write_bytes(b"the other run's image")
        encode_png(target, *args)

    monkeypatch.setattr(png_metadata, "encode_png", the_other_run_first)
    assert main(["--data-dir", str(tmp_path / "data"), "generate", "a red fox", "--batch", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == ["Memory plan: none", "wrote nibble-0-2.png",
                                                           "wrote nibble-1.png"]  # fmt: skip
    assert other.read_bytes() == b"the other run's image"
    assert read_png_text(tmp_path / "nibble-0-2.png")["parameters"].startswith("a red fox")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["nibble-0-2.png", "nibble-0.png", "nibble-1.png"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux: no file can be made in /proc, even by root")
def test_a_current_folder_that_takes_no_file_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys,
                                                                              no_work):  # fmt: skip
    """Without --out the images go into the current folder: one that takes no file was found only when the first
    image was saved, after the model loaded and the image was made (minutes on FLUX.1), then lost."""
    monkeypatch.chdir("/proc")
    err = _refused(["--data-dir", str(tmp_path / "data"), "generate", "a red fox"], capsys)
    assert err.startswith("error: cannot write the images into the current folder /proc: no file can be created "
                          "in it: ")  # fmt: skip
    assert err.endswith(" (run the command in a folder you can write to, or give --out a file in one)\n")
    assert no_work == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux: no file can be made in /proc, even by root")
def test_an_out_folder_that_takes_no_file_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys,
                                                                           no_work):  # fmt: skip
    """--out was checked with ``os.access``, which answers yes where no file can be made: root on /proc, /sys or
    a root-squashed NFS mount, and on Windows any folder an ACL closes (it reads only the read-only attribute).
    ``generate --out /proc/fox.png`` made the image and then failed ('No such file or directory'), as the current
    folder did before it was probed with a real file. ``os.access`` is made to answer yes, as it does there."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)
    err = _refused(["--data-dir", str(tmp_path / "data"), "generate", "a red fox", "--out", "/proc/fox.png"], capsys)
    assert err.startswith("error: cannot write /proc/fox.png: ")
    assert no_work == []


def test_an_out_folder_on_a_read_only_drive_is_refused_in_the_systems_words(tmp_path, monkeypatch, capsys, no_work):
    """A folder that takes no file was said to be 'Permission denied' whatever the reason (the error was made up
    from ``os.access``'s no): a drive mounted read-only is said as one, with the folder named, before any work,
    for ``generate`` and for ``quantize`` (whose --out has its parts folder beside it)."""
    import errno
    import tempfile

    drive = tmp_path / "drive"
    drive.mkdir()
    mkstemp = tempfile.mkstemp

    def read_only_drive(*args: Any, dir: Any = None, **kwargs: Any) -> tuple[int, str]:
        if dir is not None and Path(dir) == drive:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only_drive)
    data = ["--data-dir", str(tmp_path / "data")]
    for argv, out in (([*data, "generate", "x", "--out"], drive / "new" / "fox.png"),
                      ([*data, "quantize", "demo", "--out"], drive / "fox.safetensors")):  # fmt: skip
        err = _refused([*argv, str(out)], capsys)
        assert err == (f"error: cannot write {out}: {drive}: no file can be created in it: "
                       f"{os.strerror(errno.EROFS)} (choose a folder you can write to)\n")  # fmt: skip
    assert no_work == [] and list(drive.iterdir()) == []


def test_a_pipelines_transformer_folder_is_pointed_at_its_pipeline(tmp_path, capsys):
    """``--model PIPELINE/transformer`` said to give the file in it to --model, and that file
    (diffusion_pytorch_model.safetensors) was then refused with 'pick the whole pipeline folder': the hint named the
    one thing that does not work, and not the folder that does (its parent, which holds model_index.json)."""
    demo = Path(__file__).resolve().parent.parent / "resources" / "models" / "demo"
    folder = str(demo / "transformer")
    data = ["--data-dir", str(tmp_path / "data")]
    generate = [*data, "generate", "x", "--model", folder, "--out", str(tmp_path / "x.png")]
    for argv in (generate, [*data, "inspect", folder]):
        err = _refused(argv, capsys)
        assert "give the file to --model" not in err, err
        assert str(demo) in err.replace(str(demo / "transformer"), ""), err


def test_a_base_named_by_a_library_model_that_is_a_file_is_said_to_be_one(tmp_path, monkeypatch):
    """``generate --model demo-int4 --base demo-int4`` (the 4-bit model's own library name, where its pipeline was
    meant) said the base 'was not found (tried: …/demo-int4.safetensors)', a file that is there: the path given as
    ``--base …/demo-int4.safetensors`` is said to be a file, not a pipeline folder; its library name must be too."""
    from gpu.errors import ModelLoadError
    from gpu.generation.pipeline_loader import resolve_base
    from gpu.library import ModelLibrary

    monkeypatch.chdir(tmp_path)  # no file or folder named "demo-int4" here
    library = ModelLibrary(tmp_path / "lib")
    facts = library.resolve("demo-int4").facts
    with pytest.raises(ModelLoadError) as e:
        resolve_base(facts, library, "demo-int4")
    assert "not found" not in str(e.value) and "not a pipeline folder" in str(e.value), str(e.value)


def _reader_gone_after(lines: int):
    """A standard output whose reader takes ``lines`` lines, then goes away (``| head -n``): later writes raise
    BrokenPipeError."""
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            if self.getvalue().count("\n") >= lines:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    return ClosedPipe()


def test_a_reader_that_goes_away_leaves_the_written_image_in_the_log(tmp_path, monkeypatch, capsys):
    """``generate --batch 2 --out b.png | head -c1``: the first image was saved, then its 'wrote' line met the
    closed pipe and the batch ended (exit 141), silently. The log file, which ``say`` writes each console line to
    for problem reports, did not have the line either: ``say`` printed first, and the print raised."""
    from main import SIGPIPE_EXIT, main

    monkeypatch.setattr(gpu.generation.service, "GenerationService", ImagesAtOnce)
    monkeypatch.setattr(sys, "stdout", _reader_gone_after(1))  # the memory plan read, then the reader goes away
    data, out = tmp_path / "data", tmp_path / "b.png"
    assert main(["--data-dir", str(data), "generate", "a red fox", "--batch", "2", "--out", str(out)]) == SIGPIPE_EXIT
    assert (tmp_path / "b-0.png").is_file()
    log = (data / "logs" / "nibble.log").read_text()
    assert f"wrote {tmp_path / 'b-0.png'}" in log, log


def test_a_reader_that_goes_away_hears_what_was_kept_on_stderr_and_in_the_log(tmp_path, monkeypatch, capsys):
    """A batch whose reader went away after its first image ended with exit 141 and not a word: the 'wrote' lines
    had gone to the reader that left. What was kept is said on stderr and in the log's last line, as a Ctrl-C
    says it, and the batch makes no further image."""
    from main import SIGPIPE_EXIT, main

    monkeypatch.setattr(gpu.generation.service, "GenerationService", ImagesAtOnce)
    monkeypatch.setattr(sys, "stdout", _reader_gone_after(2))  # the memory plan and the first image's line
    data, out = tmp_path / "data", tmp_path / "b.png"
    assert main(["--data-dir", str(data), "generate", "a red fox", "--batch", "3", "--out", str(out)]) == SIGPIPE_EXIT
    said = (f"note: stopped, as the reader of its output went away; {tmp_path / 'b-0.png'}, {tmp_path / 'b-1.png'} "
            "were written before it and are kept")  # fmt: skip
    assert capsys.readouterr().err == said + "\n"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["b-0.png", "b-1.png"]
    last = (data / "logs" / "nibble.log").read_text().splitlines()[-1]
    assert "generate ended: exit 141 after " in last and last.endswith(said), last


def test_a_compile_mode_torch_has_not_is_a_usage_error(tmp_path, capsys, monkeypatch):
    """``bench flux --compile-mode bogus`` was taken (exit 0): the benchmark ran and recorded 'mode None' where no
    compiler took the mode, or failed once the model was built where one did. It is a usage error now, and the
    modes the option takes are torch.compile's own."""
    import types

    from main import main

    ran: list[str] = []
    stand_in = types.SimpleNamespace(run=lambda out_dir, compile_mode, **kwargs: ran.append(compile_mode) or {})
    monkeypatch.setitem(sys.modules, "gpu.bench.flux", stand_in)
    out = ["--out", str(tmp_path / "bench")]
    with pytest.raises(SystemExit) as stop:
        main(["bench", "flux", "--tiny", "--compile-mode", "bogus", *out])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "argument --compile-mode: invalid choice: 'bogus'" in err, err
    assert ran == [] and not (tmp_path / "bench").exists()
    assert main(["bench", "flux", "--tiny", "--compile-mode", "max-autotune", *out]) == 0 and ran == ["max-autotune"]
    import torch._inductor

    from main import COMPILE_MODES

    assert set(COMPILE_MODES) <= set(torch._inductor.list_mode_options())


def test_a_blank_base_is_refused_as_a_blank_model_is(tmp_path, capsys, no_work):
    """``--base ""`` (``--base "$UNSET"``) was taken for no --base: the model ran with the base it records, and a
    quantize run of a single file without one, where ``--model ""`` is refused. Refused now, before any work."""
    data = ["--data-dir", str(tmp_path / "data")]
    for command in (["generate", "x"], ["quantize", "demo", "--out", str(tmp_path / "q.safetensors")]):
        for blank, words in (("", "empty"), ("  ", "only spaces")):
            err = _refused([*data, *command, "--base", blank], capsys)
            assert err == (f'error: --base "{blank}": no base pipeline given (the name is {words}); give a '
                           "pipeline's folder or library name, or leave --base out\n")  # fmt: skip
    assert no_work == []


def test_quantize_says_which_given_options_its_method_ignores(tmp_path, capsys, monkeypatch):
    """``quantize --method nf4 --precision nvfp4 --rank 64 --alpha-points 5`` ran without a word, as if those had
    counted: NF4 has its own format, no low-rank branch and no smoothing. The options given that the method does
    not use are said on stderr; those left out are not (their defaults are no choice of the user's), nor those the
    method uses."""
    from gpu.quantize_defaults import DEFAULT_ALPHA_POINTS, DEFAULT_RANK
    from main import main

    configs: list[Any] = []

    def no_quantize(src: object, out: object, config: Any, **kwargs: object) -> None:
        configs.append(config)
        raise gpu.errors.BadRequestError("stand-in started")

    monkeypatch.setattr(gpu.quantizer, "quantize_model", no_quantize)
    quantize = ["--data-dir", str(tmp_path / "data"), "quantize", "demo", "--out", str(tmp_path / "q.safetensors")]
    cases = [
        (["--method", "nf4", "--precision", "nvfp4", "--rank", "64", "--alpha-points", "5"],
         "note: --method nf4 does not use --precision, --rank, --alpha-points: ignored\n"),
        (["--method", "naive", f"--rank={DEFAULT_RANK}", "--per-layer-smoothing"],  # the default, given all the same
         "note: --method naive does not use --rank, --per-layer-smoothing: ignored\n"),
        (["--method", "nf4"], ""),
        (["--rank", "64", "--alpha-points", "5", "--per-layer-smoothing", "--precision", "nvfp4"], ""),  # svdquant
    ]  # fmt: skip
    for args, note in cases:
        assert main([*quantize, *args]) == 2
        assert capsys.readouterr().err == note + "error: stand-in started\n", args
    # what is left out is the engine's default, as before
    nf4, _, alone, svdquant = configs
    assert (alone.precision, alone.rank, alone.alpha_points, alone.shared_smoothing) == \
        ("int4", DEFAULT_RANK, DEFAULT_ALPHA_POINTS, True)  # fmt: skip
    # ignored as said: not passed on (a value the run would refuse, --rank -5 of naive, stopped it; R65)
    assert (nf4.precision, nf4.rank, nf4.alpha_points) == ("int4", DEFAULT_RANK, DEFAULT_ALPHA_POINTS)
    assert (svdquant.rank, svdquant.alpha_points, svdquant.shared_smoothing) == (64, 5, False)
