"""A torch that cannot be loaded (a CUDA library or a Windows DLL missing, a torch install cut short): the command
line printed a traceback of imports (exit 1), and the app hung on "Starting the engine…" without a word, since
wording the error imported torch again (``gpu.out_of_memory``) and raised from the error handler. Said now as one
``error:`` line and in the app's dialog (tests/app/test_engine_start_failed.py), naming the error and the remedy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUDNN_MISSING = "libcudnn.so.9: cannot open shared object file: No such file or directory"


def torch_that_cannot_load(folder: Path) -> Path:
    """``folder``, holding a ``torch`` package whose import fails as a broken CUDA install's does: put it first on
    the module path (its own ``torch`` taken out of ``sys.modules``) and ``import torch`` raises ImportError."""
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text(f"raise ImportError({CUDNN_MISSING!r})\n")
    return folder


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python argv`` in ``tmp_path`` with that torch first on the path and a data folder of its own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(torch_that_cannot_load(tmp_path / "broken")), str(ROOT)]),
           "NIBBLE_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    return subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, text=True, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120)  # fmt: skip


def test_an_engine_error_is_worded_without_torch(tmp_path):
    """``classify`` raised the ImportError again: its RAM check's module imported torch at its top."""
    run = _run(tmp_path, "-c", "from app.engine_errors import classify; print(classify(MemoryError()).text)")
    assert (run.returncode, run.stdout) == (0, "The computer ran out of memory (RAM). Close other programs, pick a "
                                               "smaller size or a 4-bit model.\n"), run.stderr  # fmt: skip


def test_a_command_says_torch_cannot_be_loaded_in_one_line(tmp_path):
    run = _run(tmp_path, str(ROOT / "main.py"), "generate", "a red circle")
    assert run.returncode == 2, run.stderr
    assert run.stderr == (f"error: PyTorch cannot be loaded: {CUDNN_MISSING} (the installation is damaged or "
                          "incomplete: reinstall PyTorch, the build for this machine's CPU or CUDA, then the app with "
                          "pip install -e . as README.md's Set-up says)\n")  # fmt: skip
    assert not list(tmp_path.glob("*.png"))


REMEDY = ("the installation is damaged or incomplete: reinstall PyTorch, the build for this machine's CPU or CUDA, "
          "then the app with pip install -e . as README.md's Set-up says")


def test_the_self_test_says_torch_cannot_be_loaded_in_one_line(tmp_path):
    """It printed "ERROR ImportError: …" and FAILED, exit 1, naming no remedy."""
    run = _run(tmp_path, str(ROOT / "main.py"), "--self-test")
    assert (run.returncode, run.stderr) == (2, f"error: PyTorch cannot be loaded: {CUDNN_MISSING} ({REMEDY})\n")


def test_an_error_from_importing_torch_is_worded_as_the_command_line_words_it(tmp_path):
    """A quantize wizard's file check or run, the first to import a broken torch, said "Something went wrong:
    ImportError"; an OSError torch raises once loaded (a file it cannot read) is not torch's install."""
    script = ("from app.engine_errors import classify\n"
              "try:\n    import torch\nexcept ImportError as err:\n    print(classify(err).text)\n"
              "print(classify(ModuleNotFoundError('No module named torch.cuda', name='torch.cuda')).kind)\n"
              "print(classify(OSError(5, 'Input/output error')).kind)\n"
              "print(classify(ImportError('No module named x', name='x')).kind)\n")  # fmt: skip
    run = _run(tmp_path, "-c", script)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"PyTorch cannot be loaded: {CUDNN_MISSING} ({REMEDY})\nuser\ninternal\ninternal\n"


def test_an_import_error_once_torch_is_loaded_is_a_bug_not_torch_s_install():
    """A torch name the installed torch lacks (diffusers newer than torch), imported once torch was loaded, was said as
    "PyTorch cannot be loaded, reinstall", and its traceback was not logged: it is an internal error."""
    import torch  # noqa: F401

    from app.engine_errors import classify
    from gpu.torch_check import from_importing_torch

    try:
        from torch.nn.attention.flex_attention import create_block_mask_v2  # noqa: F401
    except ImportError as err:
        skew = err
    else:
        raise AssertionError("this torch has create_block_mask_v2: pick another name it lacks")
    missing = ModuleNotFoundError("No module named 'torch.nn.no_such'", name="torch.nn.no_such")
    assert not from_importing_torch(skew) and not from_importing_torch(missing)
    assert classify(skew).kind == classify(missing).kind == "internal"
