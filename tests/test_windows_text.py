"""Text files read under Windows' default encoding, simulated on Linux.

On Windows, text opened without ``encoding=`` is decoded with the ANSI code page (cp1252 in Western locales), not
UTF-8: a model folder or prompt file that is fine on Linux reads as other text there, or not at all (cp1252 has no
character for bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D, which start or continue many UTF-8 letters, e.g. 'Ł')."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from gpu.paths import resources_dir


@pytest.fixture
def windows_default_encoding(monkeypatch, tmp_path):
    """``Path.read_text``/``open`` without an encoding decode as cp1252 from here on (they resolve the default
    through ``io.text_encoding``, Python 3.10+); the fixture checks that the simulation takes effect."""
    real = io.text_encoding
    monkeypatch.setattr(io, "text_encoding",
                        lambda encoding, stacklevel=2: "cp1252" if encoding is None else real(encoding, stacklevel))
    probe = tmp_path / "probe.txt"
    probe.write_bytes("é".encode())
    assert probe.read_text() == "Ã©", "the cp1252 simulation does not reach pathlib on this Python"


def _demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "demo-copy"
    shutil.copytree(resources_dir() / "models" / "demo", folder)
    return folder


def test_a_model_folder_whose_json_is_not_ascii_opens(windows_default_encoding, tmp_path):
    from gpu.model_files import inspect_model_path

    folder = _demo_copy(tmp_path)
    for name in ("transformer/config.json", "model_index.json"):  # e.g. written with ensure_ascii=False
        path = folder / name
        path.write_text(json.dumps({**json.loads(path.read_bytes()), "_name_or_path": "C:/Users/Łukasz/flux"},
                                   ensure_ascii=False), encoding="utf-8")
    nibble = json.loads((folder / "nibble.json").read_bytes())
    (folder / "nibble.json").write_text(json.dumps({**nibble, "negative_prompt": "rozmyty, zła jakość"},
                                                   ensure_ascii=False), encoding="utf-8")
    facts = inspect_model_path(folder)
    assert facts.kind == "diffusers"
    assert facts.defaults["negative_prompt"] == "rozmyty, zła jakość" and facts.defaults["steps"] == 16


def test_calibration_prompts_are_read_as_utf8(windows_default_encoding, tmp_path):
    from gpu.quantizer.calibrate import calibration_prompts

    prompts = ["a café in Łódź at dusk", "ein Straßenfest, 東京の夜"]
    # Windows Notepad may start the file with a byte order mark
    (tmp_path / "prompts.txt").write_bytes(b"\xef\xbb\xbf" + ("\n".join(prompts) + "\n").encode())
    assert calibration_prompts(tmp_path, {"calibration_prompts": "prompts.txt"}, 10) == prompts


def test_a_batch_is_saved_whole_when_stdout_cannot_encode_its_name(tmp_path, monkeypatch):
    """On Windows, stdout redirected to a file or pipe encodes with cp1252 (strict): here such a stdout as Python
    makes it for PYTHONIOENCODING=cp1252 (a text layer over a buffered binary stream, errors strict), in this
    process (a new one cost torch's and diffusers' start-up); stderr escapes by default there as here."""
    import os
    import subprocess
    import sys

    from main import main

    made = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.encoding, sys.stdout.errors)"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONIOENCODING": "cp1252"})  # fmt: skip
    assert made.stdout.split() == ["cp1252", "strict"]  # the stdout simulated here
    written = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(written, encoding="cp1252", errors="strict"))
    out = tmp_path / "猫.png"
    assert main(["--data-dir", str(tmp_path / "data"), "generate", "a cat", "--out", str(out), "--batch", "2",
                 "--steps", "1", "--width", "64", "--height", "64"]) == 0  # fmt: skip
    sys.stdout.flush()
    assert (tmp_path / "猫-0.png").is_file() and (tmp_path / "猫-1.png").is_file()
    assert written.getvalue().decode("cp1252").count("\\u732b-") == 2  # the name, escaped, once per image


def test_nvcc_is_found_under_cuda_path_on_windows(tmp_path, monkeypatch):
    """The CUDA installer for Windows sets CUDA_PATH; the compiler there is ``bin\\nvcc.exe``."""
    from gpu.kernels.loader import find_nvcc

    nvcc = tmp_path / "cuda" / "bin" / "nvcc.exe"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_bytes(b"MZ")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setenv("CUDA_PATH", str(tmp_path / "cuda"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # not on the PATH: found through CUDA_PATH alone
    assert find_nvcc() == str(nvcc)


def test_an_svdq_file_made_on_windows_finds_its_base_beside_it(tmp_path):
    """``base_model.relative_path`` is written with ``os.path.relpath``: backslashes on Windows."""
    from types import SimpleNamespace

    from gpu.generation.pipeline_loader import resolve_base
    from gpu.library import ModelLibrary
    from tests.header_files import header_only

    base = tmp_path / "models" / "flux base"
    (base / "vae").mkdir(parents=True)
    (base / "vae" / "config.json").write_text("{}", encoding="utf-8")
    header_only(base / "vae" / "diffusion_pytorch_model.safetensors", {"w": ("F32", (1,))})  # its weights are checked
    (base / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline", "vae": ["diffusers", "X"]}),
                                           encoding="utf-8")
    svdq = tmp_path / "quantized" / "flux-int4.safetensors"
    facts = SimpleNamespace(path=svdq, base={"relative_path": "..\\models\\flux base", "path": "D:\\models\\flux base"})
    assert resolve_base(facts, ModelLibrary(tmp_path / "data"), None) == base
