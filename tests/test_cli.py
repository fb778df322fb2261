"""The CLI contract: quantize → inspect → generate round trip, and one-line errors without tracebacks."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import run_each
from PIL import Image

from gpu.checkpoint.format import read_checkpoint_meta
from gpu.generation.png_metadata import parse_parameters, read_png_text

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, data_dir: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=600, cwd=cwd,
    )  # fmt: skip


def test_help_lists_subcommands(tmp_path):
    out = _run("--help", data_dir=tmp_path)
    assert out.returncode == 0
    for cmd in ("quantize", "generate", "inspect"):
        assert cmd in out.stdout


def test_quantize_then_generate_writes_a_valid_png(tiny_flux, tmp_path, capsys):
    from main import main

    q = tmp_path / "tiny-int4.safetensors"
    # 2 calibration prompts, as the per-layer run below: the calibration's size is not what this round trip checks,
    # and the run's time grows with it
    args = ("quantize", str(tiny_flux), "--out", str(q), "--calib-prompts", "2", "--calib-steps", "2",
            "--alpha-points", "3")  # fmt: skip
    r = _run(*args, data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[40/40]" in r.stdout and q.is_file()

    # inspect and generate in this process (the quantize above ran as a real one): a process each cost its start-up
    assert main(["--data-dir", str(tmp_path), "inspect", str(q)]) == 0
    printed = capsys.readouterr().out
    assert "checksum OK" in printed and "single_transformer_blocks.1.proj_out" in printed
    assert "alpha grid of 3 points" in printed
    from safetensors import safe_open

    with safe_open(str(q), "pt") as f:  # counted from the header now: the file is only verified, not loaded
        assert f"tensors:      {len(f.keys())}, " in printed
    alphas = {float(line.split()[-2]) for line in printed.splitlines() if line.split()[2:3] == ["svdquant"]}
    assert alphas <= {0.0, 0.5, 1.0} and alphas, printed  # the grid the file was made with
    qkv = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v"]
    assert read_checkpoint_meta(q).layers[qkv[1]]["smooth_group"] == qkv  # shared smoothing by default
    apart = tmp_path / "tiny-int4-per-layer.safetensors"  # in this process: a second one costs its start-up
    assert main(["--data-dir", str(tmp_path), "quantize", str(tiny_flux), "--out", str(apart), "--calib-prompts",
                 "2", "--calib-steps", "2", "--per-layer-smoothing", "--alpha-points", "3"]) == 0  # fmt: skip
    assert not any("smooth_group" in layer for layer in read_checkpoint_meta(apart).layers.values())
    import main as cli

    def interrupt_at_the_first_layer(text: str) -> None:  # Ctrl-C once the first block's layers run
        if "[1/" in text:
            raise KeyboardInterrupt

    cut = tmp_path / "cut.safetensors"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "say", interrupt_at_the_first_layer)
        assert main(["--data-dir", str(tmp_path), "quantize", str(tiny_flux), "--out", str(cut), "--calib-prompts",
                     "2", "--calib-steps", "1", "--alpha-points", "3"]) == 130  # fmt: skip
    # It said only "error: cancelled", though the samples are kept for the next run to resume; then "the blocks
    # finished so far are kept", stopped before any block was finished.
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; the calibration samples are kept in {cut}.parts: run the same command again to resume")
    assert Path(f"{cut}.parts").is_dir() and not cut.exists()

    png = tmp_path / "out.png"
    assert main(["--data-dir", str(tmp_path), "generate", "a red circle", "--model", str(q), "--out", str(png),
                 "--seed", "5", "--negative", "blurry, dark"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    with Image.open(png) as im:
        im.verify()
    chunks = read_png_text(png)
    params = chunks["parameters"]
    assert params.splitlines()[0] == "a red circle"
    assert params.splitlines()[1] == "Negative prompt: blurry, dark"
    assert params.splitlines()[2].startswith("Steps: 3, Sampler: Euler, CFG scale: 3.0, Seed: 5, Size: 64x64")
    parsed = parse_parameters(params)
    assert parsed["model_hash"] == hashlib.sha256(q.read_bytes()).hexdigest()[:10]
    assert parsed["model"] == "tiny-int4"
    assert '"seed": 5' in chunks["nibble"]
    assert "Memory plan: " in printed and '"memory_policy": ' in chunks["nibble"]


def _user_error_cases(folder: Path, tiny_flux: Path) -> list[tuple[str, ...]]:
    corrupt = folder / "broken.safetensors"
    return [
        ("inspect", str(corrupt)),
        ("generate", "x", "--model", "no-such-model"),
        ("generate", "x", "--model", str(tiny_flux), "--width", "100"),
        ("quantize", str(corrupt), "--out", str(folder / "o.safetensors")),
        ("generate", "x", "--model", str(corrupt)),
    ]


def _output_cases(folder: Path, tiny_flux: Path) -> list[tuple[tuple[str, ...], str]]:
    return [
        (("generate", "x", "--model", str(tiny_flux), "--out", str(folder / "a-folder.png")), "is a folder"),
        (("generate", "x", "--model", str(tiny_flux), "--out", str(folder / "x.jpg")), "only .png keeps"),
        (("generate", "x", "--model", str(tiny_flux), "--seed", str(2**63 - 1), "--batch", "2"), "runs past"),
        (("quantize", str(tiny_flux), "--out", str(folder / "a-folder.png")), "is a folder"),
        (("quantize", str(tiny_flux), "--out", str(folder / "r.safetensors"), "--rank", "1000"), "rank 1000"),
        (("quantize", str(tiny_flux), "--out", str(folder / "r.safetensors"), "--method", "svd", "--rank", "0"),
         "svd at rank 0 has no low-rank branch: it makes the same model as naive (use --method naive"),
        (("quantize", str(tiny_flux), "--out", str(folder / "r.safetensors"), "--calib-steps", "-1"), "steps"),
        (("quantize", str(tiny_flux), "--out", str(folder / "r.safetensors"), "--gpu-budget", "0"),
         "GPU memory budget of 0 GiB"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one_line_errors(tiny_flux, tmp_path_factory) -> dict[str, Path | list[subprocess.CompletedProcess]]:
    """The command lines of the two tests below, but for their real runs, one after another in ONE process, each
    with its own exit code and stderr (cli_runs; a process each cost its start-up): the output and setting problems
    first (data folder "outputs/data"), then the user errors but the first (data folder "errors"), the one on a
    corrupt model last: what Python prints at exit, once the engine's libraries were loaded, lands in its stderr."""
    root = tmp_path_factory.mktemp("one-line-errors")
    errors, outputs = root / "errors", root / "outputs"
    errors.mkdir()
    (errors / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    (outputs / "a-folder.png").mkdir(parents=True)
    (outputs / "a-file").write_text("")
    argvs = [["--data-dir", str(outputs / "data"), *args] for args, _ in _output_cases(outputs, tiny_flux)]
    argvs += [["--data-dir", str(errors), *args] for args in _user_error_cases(errors, tiny_flux)[1:]]
    runs = run_each(argvs, scratch=root / "runs")
    split = len(_output_cases(outputs, tiny_flux))
    return {"errors": errors, "outputs": outputs, "error runs": runs[split:], "output runs": runs[:split]}


def test_user_errors_are_one_line_without_traceback(tiny_flux, one_line_errors):
    folder = one_line_errors["errors"]
    cases = _user_error_cases(folder, tiny_flux)
    # The first as a real run; the others in the fixture's one process
    runs = [_run(*cases[0], data_dir=folder), *one_line_errors["error runs"]]
    for args, r in zip(cases, runs, strict=True):
        assert r.returncode == 2, (args, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert "multiple of 16" in runs[2].stderr


def test_output_and_setting_problems_fail_first_with_one_line(tiny_flux, one_line_errors):
    folder = one_line_errors["outputs"]
    cases = _output_cases(folder, tiny_flux)
    # in the fixture's one process; the last check below is a real run
    for (args, words), r in zip(cases, one_line_errors["output runs"], strict=True):
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        assert words in lines[0], (args, lines[0])
    assert not (folder / "r.safetensors").exists() and not list(folder.glob("*.parts"))
    r = _run("generate", "x", data_dir=folder / "a-file")
    assert r.returncode == 2 and r.stderr.startswith(
        f"error: --data-dir {folder / 'a-file'}: cannot use it as the "
        "data folder: it is a file, not a folder (give --data-dir "
    )


def test_the_default_output_name_never_replaces_an_earlier_image(tiny_flux, tmp_path, monkeypatch, capsys):
    from main import main

    monkeypatch.chdir(tmp_path)  # default names are in the current folder; in this process: no start-ups
    args = ["--model", str(tiny_flux), "--seed", "5", "--steps", "1"]
    assert main(["--data-dir", str(tmp_path), "generate", "a red circle", *args]) == 0
    kept = (tmp_path / "nibble-5.png").read_bytes()
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "generate", "a blue square", *args]) == 0
    assert "wrote nibble-5-2.png" in capsys.readouterr().out
    assert (tmp_path / "nibble-5.png").read_bytes() == kept
    assert read_png_text(tmp_path / "nibble-5-2.png")["parameters"].startswith("a blue square")


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_in_a_batch_keeps_the_images_already_made_each_named_by_its_seed(tmp_path, monkeypatch, capsys):
    """A batch's images were all kept in memory and saved at the end: Ctrl-C (or a failure) at the last one lost
    every image already made. Without --out they were named nibble-<seed>-<index>.png, not nibble-<seed>.png."""
    args = [sys.executable, str(ROOT / "main.py"), "--data-dir", str(tmp_path / "data"), "generate", "a red circle",
            "--seed", "7", "--width", "64", "--height", "64"]  # fmt: skip
    # SIGINT's default action back in the child: a shell without job control starts its background jobs (a CI
    # runner's, say) with SIGINT ignored, which Python then leaves ignored, and the batch would simply finish.
    run = subprocess.Popen([*args, "--batch", "3", "--steps", "100"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        assert run.stdout.readline().startswith("Memory plan: ")  # said before the model loads
        first = run.stdout.readline()  # printed once the first image is saved; the second one is under way
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=600)
    finally:
        run.kill()
    assert first.startswith("wrote nibble-7.png (64x64, 100 steps, seed 7")
    # and it says which were kept (it said only "error: cancelled")
    assert run.returncode == 130
    assert err.splitlines()[-1] == "error: cancelled; nibble-7.png was written before it and is kept"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["nibble-7.png"]
    with Image.open(tmp_path / "nibble-7.png") as im:
        im.verify()

    from main import main

    monkeypatch.chdir(tmp_path)  # the names taken next: in this process (a second one cost its start-up)
    assert main([*args[2:], "--batch", "2", "--steps", "1"]) == 0
    wrote = [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()[1:3]]  # after the memory plan
    assert wrote == ["wrote nibble-7-2.png", "wrote nibble-8.png"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["nibble-7-2.png", "nibble-7.png", "nibble-8.png"]


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_in_the_self_test_is_said_as_a_cancelled_command(tmp_path):
    """Ctrl-C in --self-test printed KeyboardInterrupt's traceback and ended the process by the signal, not with
    the 130 and "error: cancelled" of the commands. The last report is kept: a cancelled run is no result."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "self-test.txt").write_text("the last report\n")
    run = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--data-dir", str(data), "--self-test"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a batch's test
    try:
        first = run.stdout.readline()  # the report's first line: the check is under way
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=600)
    finally:
        run.kill()
    assert first.endswith(" self-test\n")
    assert (run.returncode, err) == (130, "error: cancelled\n")
    assert (data / "self-test.txt").read_text() == "the last report\n"


CONSOLE_LOST = ("error: the command's output could not be written to the console (its standard output, or the file "
                "it is redirected to): No space left on device; the command stopped (redirect its output to a file on "
                "a disk with free space, or let it print in the terminal)\n")  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="a device that is always full")
def test_a_console_output_that_cannot_be_written_is_said_as_such(tmp_path):
    """generate > /dev/full said "error: No space left on device": read as the image's disk being full."""
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, str(ROOT / "main.py"), "--data-dir", str(tmp_path / "data"), "generate",
                              "x", "--batch", "2", "--out", "z.png"], cwd=tmp_path, stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=600)  # fmt: skip
    assert (run.returncode, run.stderr) == (2, CONSOLE_LOST)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="a device that is always full")
@pytest.mark.parametrize("command", [["main.py", "--self-test"], ["-m", "gpu.self_test"]], ids=["main", "module"])
def test_the_self_tests_console_output_that_cannot_be_written_is_said_as_such(tmp_path, monkeypatch, command):
    """--self-test > /dev/full said "error: No space left on device": its lines did not go through the commands'
    writer; ``python -m gpu.self_test > /dev/full`` ended in that error's traceback."""
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, *command], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True,
                             timeout=600)  # fmt: skip
    assert (run.returncode, run.stderr) == (2, CONSOLE_LOST)


def test_quantize_with_an_unwritable_console_is_not_said_as_a_full_disk(tmp_path, monkeypatch, capsys):
    """quantize said the disk holding its output was full when its progress lines could not be written."""
    import errno
    import io

    from main import main

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "q.safetensors"
    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "2", "--calib-steps", "1",
                 "--alpha-points", "2"]) == 2  # fmt: skip
    assert capsys.readouterr().err == CONSOLE_LOST
    assert not out.exists()


def test_every_exit_status_is_listed_in_help_and_the_readme(capsys):
    """--help and the README gave only 2 (a user error) and --self-test's 0/1: a script could not tell Ctrl-C's 130,
    a broken pipe's 141 or a crash's 1 from them; nor that the app exits 1 when it refuses to start (a dialog)."""
    from main import SIGPIPE_EXIT, main

    with pytest.raises(SystemExit):
        main(["--help"])
    helped = " ".join(capsys.readouterr().out.split())
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for said in ("0 done (", "1 --self-test failed, or a crash",
                 "or the app (no command) refused to start (its data folder cannot be made, another copy of it uses "
                 "that folder, or its database cannot be opened: said in a window)", "2 a user error or a usage error",
                 "130 cancelled (Ctrl-C)", f"{SIGPIPE_EXIT} the reader of the output went away"):
        assert said in helped
        assert said.replace("--self-test", "`--self-test`") in readme


def test_gpu_benchmarks_without_a_gpu_are_a_one_line_error(tmp_path, capsys):
    """bench kernels on a machine without CUDA ended in torch's traceback ("Torch not compiled with CUDA
    enabled", exit 1); bench flux said so, but with exit 1, not a user error's 2."""
    import torch

    from main import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is there")
    for what, hint in [("kernels", "an NVIDIA GPU)"), ("flux", "add --tiny to check the plumbing on the CPU)")]:
        assert main(["bench", what, "--out", str(tmp_path / "bench")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: bench {what} needs a CUDA GPU") and err.endswith(f"{hint}\n"), err
    assert not (tmp_path / "bench").exists()


def test_a_damaged_model_library_is_said_on_the_console(tmp_path, capsys):
    """The CLI kept a damaged library.json aside with a log line only: the models the user added in the app
    were gone from the list, and nothing on the console said why."""
    from main import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "library.json").write_bytes(b"\xff not json")
    out = tmp_path / "a.png"
    code = main(["--data-dir", str(data), "generate", "x", "--out", str(out), "--steps", "1", "--width", "64",
                 "--height", "64"])  # fmt: skip
    err = capsys.readouterr().err
    (kept,) = data.glob("library.json.damaged-*")
    assert code == 0 and out.is_file()
    assert err.count("note: ") == 1 and kept.name in err and "add your models again" in err, err


@pytest.fixture
def nothing_else_runs(monkeypatch) -> list[str]:
    """The app and the self test replaced by stand-ins that record being started."""
    import gpu.self_test
    import main

    started: list[str] = []
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # as CI runs it: on a machine with no display, main refuses
    monkeypatch.setattr(main, "run_gui", lambda args, argv: started.append("gui") or 0)
    monkeypatch.setattr(gpu.self_test, "main", lambda argv: started.append("self-test") or 0)
    return started



def test_a_default_data_folder_that_takes_no_file_refuses_only_the_self_test(tmp_path, capsys, monkeypatch,
                                                                             nothing_else_runs):  # fmt: skip
    """An existing read-only default folder refused generate ("no file can be created in it"), which wrote its
    image there before; only the self-test, which writes its report into it, needs to write there."""
    import appdirs

    import gpu.output_folders
    import main

    default = tmp_path / "share" / "NibbleStudio"
    default.mkdir(parents=True)
    monkeypatch.delenv("NIBBLE_DATA_DIR")
    monkeypatch.setattr(appdirs, "user_data_dir", lambda *a, **k: str(default))

    def read_only(folder: Path) -> None:  # a chmod would not stop root
        raise OSError(30, "no file can be created in it: Read-only file system", str(folder))

    monkeypatch.setattr(gpu.output_folders, "check_folder_writable", read_only)
    monkeypatch.setitem(main.COMMANDS, "generate", lambda args: nothing_else_runs.append("generate") or 0)
    assert main.main(["generate", "x"]) == 0
    assert main.main(["--self-test"]) == 2
    assert capsys.readouterr().err == (f"error: {default}: cannot use it as the data folder: no file can be created "
                                       "in it: Read-only file system (give a folder you can write to with --data-dir "
                                       "PATH, or set NIBBLE_DATA_DIR to one)\n")  # fmt: skip
    assert nothing_else_runs == ["generate"]

@pytest.fixture
def on_a_terminal(monkeypatch) -> None:
    """Run as from a terminal, which shows stderr (pytest's capture is no terminal): the desktop app started with
    none says why it cannot start in a dialog as well (``main.windowed_app``: tests/app/test_data_dir_start*.py)."""
    import main

    monkeypatch.setattr(main, "no_terminal", lambda: False)


def test_an_unusable_data_folder_is_named_as_the_data_folder_before_anything_runs(tmp_path, capsys, monkeypatch,
                                                                                  nothing_else_runs,
                                                                                  on_a_terminal):  # fmt: skip
    """The system's words alone ('/x/a-file/data: Not a directory') did not say that the data folder was the
    problem, and the app, the self test or the command started first."""
    from main import main

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    under_a_file, missing = a_file / "data", tmp_path / "missing.safetensors"
    named = f"error: --data-dir {under_a_file}: cannot use it as the data folder: {a_file} is a file, not a folder ("
    for args in (["inspect", str(missing)], ["generate", "x"], ["--self-test"], []):  # [] is the desktop app
        assert main(["--data-dir", str(under_a_file), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(named) and err.count("\n") == 1, (args, err)
    assert main(["--data-dir", str(a_file), "generate", "x"]) == 2
    assert "data folder: it is a file, not a folder (give --data-dir a folder" in capsys.readouterr().err
    if Path("/proc/self").is_dir():  # Linux: nothing can be made in /proc, not even by root
        assert main(["--data-dir", "/proc/nibble-data", "inspect", str(missing)]) == 2
        assert capsys.readouterr().err.startswith("error: --data-dir /proc/nibble-data: cannot use it as the data "
                                                  "folder: ")  # fmt: skip
        # /proc itself exists, so mkdir passed it and the command failed later, naming some file inside; /sys
        # refuses for another reason (which one depends on how it is mounted). Permission bits would not stop
        # root: no file can be made in either by anyone.
        for folder in ("/proc", "/sys"):  # the system's reason depends on the kernel and how they are mounted
            assert main(["--data-dir", folder, "inspect", str(missing)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"error: --data-dir {folder}: cannot use it as the data folder: no file can be "
                                  "created in it: ") and err.count("\n") == 1, err  # fmt: skip
            assert err.endswith(" (give --data-dir a folder you can write to, e.g. --data-dir ~/nibble-data)\n")
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(under_a_file))  # the variable is named when it chose the folder
    assert main(["inspect", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: NIBBLE_DATA_DIR={under_a_file}: cannot use it as the data "
        f"folder: {a_file} is a file, not a folder (set NIBBLE_DATA_DIR to "
    )
    assert nothing_else_runs == [] and not missing.exists()


def test_an_unusable_default_data_folder_is_named_with_the_ways_to_give_another(tmp_path, capsys, monkeypatch,
                                                                                on_a_terminal):  # fmt: skip
    """With neither --data-dir nor NIBBLE_DATA_DIR, a default folder that cannot be made (a home folder the user may
    not write) was the system's bare words for generate and quantize ("error: /home/u/.local: Permission denied"),
    and the self-test reported a failed engine (exit 1, a PermissionError) that works. Each says now that the data
    folder cannot be used and how to give another; inspect, which only reads it, runs as before."""
    import appdirs

    from main import main

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    default = a_file / "share" / "NibbleStudio"  # a HOME that is a file refuses even root
    monkeypatch.delenv("NIBBLE_DATA_DIR")
    monkeypatch.setattr(appdirs, "user_data_dir", lambda *a, **k: str(default))
    out = tmp_path / "out.safetensors"
    for args in (["generate", "x"], ["quantize", "demo", "--out", str(out)], ["--self-test"]):
        assert main(args) == 2, args
        assert capsys.readouterr().err == (f"error: {default}: cannot use it as the data folder: {a_file} is a file, "
                                           "not a folder (give a folder you can write to with --data-dir PATH, or "
                                           "set NIBBLE_DATA_DIR to one)\n"), args  # fmt: skip
    assert main(["inspect", str(tmp_path / "missing.safetensors")]) == 2
    assert "data folder" not in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.safetensors.parts").exists()


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_link_that_leads_nowhere_is_named_not_followed(tmp_path, capsys, monkeypatch, nothing_else_runs,
                                                         on_a_terminal):  # fmt: skip
    """A --data-dir or NIBBLE_DATA_DIR under a link to a folder that is not there (an unplugged drive) was
    resolved through it, and the link's target made (on the system disk, where the drive was not mounted); an
    --out under one was refused as "File exists" after the image was made. Both name the link and its target."""
    from main import main

    link, gone = tmp_path / "drive", tmp_path / "unplugged"
    link.symlink_to(gone)
    why = f"{link} is a link to {gone}, which is not there: the drive it is on may be unplugged or unmounted"
    for data in (link / "data", link):
        assert main(["--data-dir", str(data)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --data-dir {data}: cannot use it as the data folder: {why}"), err
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(link / "data"))
    assert main([]) == 2
    assert capsys.readouterr().err.startswith(f"error: NIBBLE_DATA_DIR={link / 'data'}: cannot use it as the "
                                              f"data folder: {why}")  # fmt: skip
    out = link / "images" / "a.png"
    assert main(["--data-dir", str(tmp_path / "data"), "generate", "x", "--out", str(out), "--steps", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: cannot write {out}: {why}") and captured.out == "", captured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "drive"] and nothing_else_runs == []


def test_a_data_folder_through_a_missing_folder_and_dot_dot_makes_no_stray_folder(tmp_path, capsys, monkeypatch,
                                                                                    nothing_else_runs):  # fmt: skip
    """``--data-dir typo/../data`` (or NIBBLE_DATA_DIR) over a ``typo`` that is not there made ``typo`` beside
    ``data``: the data folder was made absolute with its ``..`` kept. The part that is missing is joined by name,
    for the command line and the app alike (``gpu.paths.absolute_folder``)."""
    from app.data_dir import resolve_data_dir
    from main import main

    monkeypatch.chdir(tmp_path)
    assert main(["--data-dir", "typo/../by-flag"]) == 0
    assert os.environ["NIBBLE_DATA_DIR"] == str(tmp_path.resolve() / "by-flag")
    monkeypatch.setenv("NIBBLE_DATA_DIR", "typo/./../by-variable")
    assert main([]) == 0 and os.environ["NIBBLE_DATA_DIR"] == str(tmp_path.resolve() / "by-variable")
    assert resolve_data_dir(Path("typo/../by-app")).root == tmp_path.resolve() / "by-app"
    monkeypatch.setenv("NIBBLE_DATA_DIR", "typo/../by-app-variable")
    assert resolve_data_dir().root == tmp_path.resolve() / "by-app-variable"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["by-app", "by-app-variable", "by-flag", "by-variable"]
    assert nothing_else_runs == ["gui", "gui"] and capsys.readouterr().err == ""


def test_absolute_folder_resolves_what_exists_and_joins_the_rest_by_name(tmp_path, monkeypatch):
    """``gpu.paths.absolute_folder``: absolute (a Windows ``C:data`` stayed relative with ``Path.absolute`` before
    Python 3.12), so a later chdir does not move it; a link that exists followed as ``Path.resolve`` follows it, one
    that leads nowhere kept and its target never made; ``..`` after a missing folder taken out by name, and after an
    existing link the link's target's parent, as the system goes up."""
    from gpu.paths import absolute_folder

    tmp_path = tmp_path.resolve()
    real = tmp_path / "real"
    (real / "inside").mkdir(parents=True)
    monkeypatch.chdir(real / "inside")
    here = absolute_folder("new")
    monkeypatch.chdir(tmp_path)
    assert here.is_absolute() and here == real / "inside" / "new"
    assert absolute_folder("missing/../new") == tmp_path / "new"
    assert absolute_folder(".") == tmp_path and absolute_folder("real/inside/..") == real
    if os.name == "nt":
        return  # links need a privilege there
    (tmp_path / "link").symlink_to(real / "inside")
    (tmp_path / "drive").symlink_to(tmp_path / "unplugged")
    assert absolute_folder("link/data") == real / "inside" / "data"
    assert absolute_folder("link/../data") == real / "data"  # the system's "..": the target's parent
    assert absolute_folder("missing/../link/data") == real / "inside" / "data"  # back into what exists: resolved
    assert absolute_folder("drive/data") == tmp_path / "drive" / "data"  # kept, not tmp_path/unplugged/data
    # up from a link that leads nowhere, or a file: kept as written, for making the folder to refuse, never by name
    assert absolute_folder("drive/../data") == tmp_path / "drive" / ".." / "data"
    (tmp_path / "afile").write_bytes(b"")
    assert absolute_folder("afile/../data") == tmp_path / "afile" / ".." / "data"
    assert absolute_folder("missing/../link/../data") == real / "data"  # up from the link's target in the tail too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "drive", "link", "real"]


def test_a_data_folder_deeper_than_pythons_recursion_limit_is_made(tmp_path, deep_path, nothing_else_runs):
    """pathlib's mkdir(parents=True) recurses once per folder: a --data-dir 1100 folders deep (within the system's
    path limit) was refused as "a symbolic link loop" (its RecursionError taken for one). The engine makes its data
    and cache folders as it makes every output folder, one level at a time."""
    import gpu.paths
    from main import main

    deep = str(deep_path(1100, "data"))  # removed by the fixture: shutil.rmtree, which removes tmp_path, recurses
    assert main(["--data-dir", deep]) == 0 and nothing_else_runs == ["gui"]
    assert (tmp_path / deep).is_dir() and gpu.paths.user_cache_dir() == (tmp_path / deep / "cache").resolve()
    assert gpu.paths.user_cache_dir().is_dir()


def test_a_windowed_app_without_a_console_leaves_the_data_folder_to_its_dialog(tmp_path, monkeypatch,
                                                                                nothing_else_runs,
                                                                                a_gui_can_be_seen):  # fmt: skip
    from main import main

    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(sys, "stderr", None)  # a windowed Windows executable: a line there is seen by no one
    assert main(["--data-dir", str(tmp_path / "a-file" / "data")]) == 0 and nothing_else_runs == ["gui"]


def test_an_empty_data_dir_is_refused_not_read_as_the_current_folder(capsys, nothing_else_runs, on_a_terminal):
    """One line like every other bad value (argparse printed its usage line before it). A windowed app refuses it
    too, in a dialog (tests/app/test_data_dir_start.py): an empty name is no folder its own dialog could name."""
    from main import main

    for args in (["inspect", "missing.safetensors"], ["generate", "x"], []):
        assert main(["--data-dir", "", *args]) == 2, args
        assert capsys.readouterr().err == ('error: --data-dir "": the folder name is empty (give a folder, e.g. '
                                           "--data-dir ~/nibble-data, or leave --data-dir out for the default "
                                           "one)\n")  # fmt: skip
    assert nothing_else_runs == []


def test_an_empty_data_dir_variable_is_unset_for_the_command_line_and_the_engine(tmp_path, monkeypatch,
                                                                                  nothing_else_runs):  # fmt: skip
    """``NIBBLE_DATA_DIR=""`` is no folder (``Path("")`` would be the current one): the command line leaves the
    default folder to the engine, and the engine reads the platform's folders, data and cache alike
    (``gpu.paths.data_dir_override``, the one reading of the variable)."""
    import appdirs

    import gpu.paths
    from main import main

    monkeypatch.setenv("NIBBLE_DATA_DIR", "")
    monkeypatch.setattr(appdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "platform-data"))
    monkeypatch.setattr(appdirs, "user_cache_dir", lambda *a, **k: str(tmp_path / "platform-cache"))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0 and nothing_else_runs == ["gui"]
    assert os.environ["NIBBLE_DATA_DIR"] == "" and sorted(p.name for p in tmp_path.iterdir()) == []
    assert gpu.paths.data_dir_override() is None
    assert gpu.paths.user_data_path() == tmp_path / "platform-data"
    assert gpu.paths.user_cache_dir() == tmp_path / "platform-cache"
    monkeypatch.setenv("NIBBLE_DATA_DIR", "data")
    data = tmp_path.resolve() / "data"  # absolute, as the command line and the app export it
    assert gpu.paths.data_dir_override() == data and gpu.paths.user_cache_dir() == data / "cache"


def test_a_data_folder_name_of_spaces_is_no_folder_and_tilde_is_the_home_folder(tmp_path, capsys, monkeypatch,
                                                                                nothing_else_runs,
                                                                                on_a_terminal):  # fmt: skip
    """``--data-dir "  "`` and ``NIBBLE_DATA_DIR="  "`` made a folder named with spaces in the current one, and a
    "~" no shell expanded (a desktop shortcut, a .desktop file) a folder named "~". A blank --data-dir is refused as
    an empty one is, a blank variable is unset as an empty one is, and "~" is the home folder, for the command
    line, the engine and the app alike (``gpu.paths.named_data_dir``)."""
    import appdirs

    import gpu.paths
    from app.data_dir import resolve_data_dir
    from main import main

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for variable in ("HOME", "USERPROFILE"):  # the latter on Windows
        monkeypatch.setenv(variable, str(home))
    monkeypatch.setattr(appdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "platform-data"))
    monkeypatch.setattr(appdirs, "user_cache_dir", lambda *a, **k: str(tmp_path / "platform-cache"))
    for args in (["inspect", "missing.safetensors"], []):  # [] is the desktop app
        assert main(["--data-dir", "  ", *args]) == 2, args
        assert capsys.readouterr().err == ('error: --data-dir "  ": the folder name is only spaces (give a folder, '
                                           "e.g. --data-dir ~/nibble-data, or leave --data-dir out for the default "
                                           "one)\n")  # fmt: skip
    monkeypatch.setenv("NIBBLE_DATA_DIR", "  ")
    assert main([]) == 0 and gpu.paths.data_dir_override() is None
    assert gpu.paths.user_data_path() == tmp_path / "platform-data"
    assert gpu.paths.user_cache_dir() == tmp_path / "platform-cache"
    assert list(cwd.iterdir()) == [] and nothing_else_runs == ["gui"]

    assert main(["--data-dir", "~/by-flag"]) == 0 and (home / "by-flag").is_dir()
    monkeypatch.setenv("NIBBLE_DATA_DIR", "~/by-variable")
    assert gpu.paths.user_cache_dir() == home / "by-variable" / "cache"
    assert main([]) == 0 and (home / "by-variable").is_dir()
    assert resolve_data_dir(Path("~/by-app")).root == (home / "by-app").resolve()
    assert list(cwd.iterdir()) == [] and nothing_else_runs == ["gui", "gui", "gui"]


def test_self_test_with_a_sub_command_is_a_usage_error(capsys, nothing_else_runs):
    """--self-test ran the self test and dropped the sub-command without a word."""
    from main import main

    with pytest.raises(SystemExit) as stop:
        main(["--self-test", "generate", "a red star"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("usage: main.py")
    assert "error: --self-test takes no sub-command: run 'main.py --self-test' and 'main.py generate ...'" in err
    assert nothing_else_runs == []


def test_a_prompt_longer_than_the_model_reads_is_said_with_the_end_it_ignores(tmp_path, capsys):
    """The demo model reads 32 T5 tokens: a longer prompt lost its end without a word, the image made anyway."""
    from main import main

    prompt = ("a small red star in the top left on a blue background with a green ring and a yellow square near the "
              "bottom right corner and a purple triangle in the middle of the picture, drawn large")  # fmt: skip
    out = tmp_path / "a.png"
    code = main(["--data-dir", str(tmp_path / "data"), "generate", prompt, "--out", str(out), "--steps", "1",
                 "--width", "64", "--height", "64", "--negative", "blurry"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and out.is_file() and "note: " not in captured.out
    assert captured.err == ("note: the prompt is 45 tokens long; model demo reads the first 32, so this end of it is "
                            "ignored: 'triangle in the middle of the picture, drawn large'\n")  # fmt: skip
    assert read_png_text(out)["parameters"].startswith(f"{prompt}\nNegative prompt: blurry\nSteps: 1,")


@pytest.mark.parametrize(("side", "refusal"), [
    ("--width=2000000000", "error: width 2000000000 is not possible: use a multiple of 16 between 64 and "),
    ("--width=-16", "error: width -16 is not possible: use a multiple of 16 between 64 and "),
    ("--height=100", "error: height 100 is not possible: use a multiple of 16 between 64 and "),
])  # fmt: skip
def test_an_impossible_size_is_refused_before_any_memory_plan(tmp_path, capsys, side, refusal):
    """The size is checked before the plan is said: --width=2000000000 printed a plan needing 579834 GiB (more than
    this machine's RAM, try a 4-bit model) before refusing it; --width=-16 planned for -16x64 images."""
    from main import main

    out = tmp_path / "a.png"
    assert main(["--data-dir", str(tmp_path / "data"), "generate", "x", "--model", "demo", side, "--out", str(out),
                 "--steps", "1"]) == 2  # fmt: skip
    printed = capsys.readouterr()
    assert printed.err.startswith(refusal) and printed.out == "" and not out.exists()
