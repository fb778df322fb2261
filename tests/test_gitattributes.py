"""Line endings of a Windows checkout. Git for Windows checks text files out with CRLF (``core.autocrlf=true``);
the kernel loader hashes the kernel sources byte for byte, so CRLF there would make every shipped fatbin look stale
(its sidecar records the LF sources' hash). ``.gitattributes`` keeps those files LF; checked with a real clone made
with Git for Windows' setting, on any platform."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpu.kernels import loader

ROOT = Path(__file__).resolve().parent.parent
GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not installed")

FILES = {  # path -> LF content; which must come out of a CRLF checkout unchanged
    "kernels_cu/svdq_a.cu": (b'#include "svdq_b.cuh"\n// one\n// two\n', True),
    "kernels_cu/svdq_b.cuh": (b"#pragma once\n#define X 1\n", True),
    "packaging/build.sh": (b"#!/usr/bin/env bash\necho hi\n", True),
    ".ci/run": (b"#!/usr/bin/env bash\npytest\n", True),
    "resources/models/m.safetensors": (b"\x08\x00\x00\x00\x00\x00\x00\x00{}      \nweights\n", True),
    "README.md": (b"# title\ntext\n", False),  # ordinary text: CRLF on Windows, which shows the setting applies
}


def _git(*args: str, cwd: Path) -> None:
    subprocess.run([GIT, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                    "-c", "core.autocrlf=false", *args], cwd=cwd, check=True, capture_output=True)


def test_a_windows_checkout_keeps_kernel_sources_and_scripts_lf(tmp_path, monkeypatch):
    attributes = ROOT / ".gitattributes"
    assert attributes.is_file(), "no .gitattributes: Git for Windows would check the kernel sources out as CRLF"
    origin = tmp_path / "origin"
    origin.mkdir()
    shutil.copy(attributes, origin / ".gitattributes")
    for name, (content, _) in FILES.items():
        (origin / name).parent.mkdir(parents=True, exist_ok=True)
        (origin / name).write_bytes(content)
    _git("init", "-q", cwd=origin)
    _git("add", "-A", cwd=origin)
    _git("commit", "-q", "-m", "x", cwd=origin)

    windows = tmp_path / "windows"  # cloned as Git for Windows does by default
    subprocess.run([GIT, "-c", "core.autocrlf=true", "clone", "-q", "-c", "core.autocrlf=true", str(origin),
                    str(windows)], check=True, capture_output=True)
    for name, (content, keeps_lf) in FILES.items():
        got = (windows / name).read_bytes()
        if keeps_lf:
            assert got == content, f"{name} changed in a CRLF checkout"
        else:
            assert got == content.replace(b"\n", b"\r\n"), "the clone did not apply Git for Windows' setting"

    # what this is for: the loader's source hash is the same in both checkouts
    hashes = []
    for checkout in (origin, windows):
        monkeypatch.setattr(loader, "source_dir", lambda folder=checkout / "kernels_cu": folder)
        hashes.append(loader.source_hash("svdq_a"))
    assert hashes[0] is not None and hashes[0] == hashes[1]


def test_every_file_the_kernel_loader_hashes_is_kept_lf():
    hashed = [loader.source_dir() / f"{stem}.cu" for stem in loader.KERNEL_FAMILIES]
    hashed += sorted(loader.source_dir().glob("*.cuh"))
    names = [str(p.relative_to(ROOT)) for p in hashed if p.exists()]
    assert names, "no kernel sources found"
    out = subprocess.run([GIT, "check-attr", "eol", "--", *names], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    assert out.stdout.splitlines() == [f"{name}: eol: lf" for name in names]
