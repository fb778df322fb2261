"""The X-library checks of ``packaging/build_linux.sh``, run as the script runs them (its functions, sourced into
bash) with stand-ins for ``ldconfig`` and ``ldd``: a build machine without a library Qt's xcb plugin needs stops
the build (PyInstaller would leave it out, the self-test passes offscreen, and the app never opens its window on a
desktop that lacks it), unless NIBBLE_ALLOW_MISSING_X=1 says to build anyway. No PyInstaller build runs here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "packaging" / "build_linux.sh"

pytestmark = pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None, reason="needs bash")


def _x_libraries() -> list[tuple[str, str]]:
    """(Debian package, soname) of the script's X_LIBRARIES."""
    out = subprocess.run(["bash", "-c", f'source "{SCRIPT}"; printf "%s\\n" "${{X_LIBRARIES[@]}}"'],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [tuple(line.split(":", 1)) for line in out.split()]


def _bash(tmp_path: Path, call: str, ldconfig: Sequence[str] = (), ldd: str = "", **env: str,
          ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Runs ``call`` after sourcing the script, with ``ldconfig -p`` listing the sonames ``ldconfig`` and ``ldd``
    printing ``ldd`` (its own stand-ins, first on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    listing = "".join(f"\t{name} (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/{name}\\n" for name in ldconfig)
    (bin_dir / "ldconfig").write_text(f'#!/bin/sh\nprintf "{len(ldconfig)} libs found in cache\\n{listing}"\n')
    (bin_dir / "ldd").write_text(f"#!/bin/sh\ncat <<'EOF'\n{ldd}\nEOF\n")
    for tool in ("ldconfig", "ldd"):
        (bin_dir / tool).chmod(0o755)
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
    if "NIBBLE_ALLOW_MISSING_X" not in env:  # the caller's own setting would make every failure a warning
        environ.pop("NIBBLE_ALLOW_MISSING_X", None)
    return subprocess.run(["bash", "-c", f'source "{SCRIPT}"; {call}'], capture_output=True, text=True, env=environ)


def test_the_readme_installs_exactly_the_libraries_the_script_checks():
    packages = [package for package, _ in _x_libraries()]
    assert {"libxcb-image0", "libxcb-render-util0", "libxcb-cursor0"} <= set(packages)
    readme = (REPO / "packaging" / "README.md").read_text(encoding="utf-8")
    install = re.search(r"sudo apt-get install -y (.+)", readme)
    assert install and install.group(1).split() == packages


def test_a_missing_x_library_stops_the_build_and_names_its_package(tmp_path):
    libraries = _x_libraries()
    present = [soname for package, soname in libraries if package not in ("libxcb-image0", "libxcb-render-util0")]
    done = _bash(tmp_path, "check_x_libraries", ldconfig=present)
    assert done.returncode != 0
    assert "libxcb-image.so.0 libxcb-render-util.so.0" in done.stderr
    assert "apt-get install -y libxcb-image0 libxcb-render-util0" in done.stderr
    assert "NIBBLE_ALLOW_MISSING_X=1" in done.stderr and done.stderr.startswith("error: ")

    allowed = _bash(tmp_path, "check_x_libraries", ldconfig=present, NIBBLE_ALLOW_MISSING_X="1")
    assert allowed.returncode == 0 and allowed.stderr.startswith("warning: ")
    assert "libxcb-image.so.0" in allowed.stderr and "opens no window" in allowed.stderr

    everything = _bash(tmp_path, "check_x_libraries", ldconfig=[soname for _, soname in libraries])
    assert everything.returncode == 0 and everything.stderr == ""


def _bundle(tmp_path: Path, without: str = "") -> Path:
    internal = tmp_path / "Nibble Studio" / "_internal"
    for rel in ("PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/lib/libQt6XcbQpa.so.6",
                *(soname for _, soname in _x_libraries() if soname != without)):  # fmt: skip
        (internal / rel).parent.mkdir(parents=True, exist_ok=True)
        (internal / rel).write_bytes(b"\x7fELF")
    return internal.parent


RESOLVED = "\tlibxcb-cursor.so.0 => /b/_internal/libxcb-cursor.so.0 (0x1)\n\tlibc.so.6 => /lib/libc.so.6 (0x2)"


def test_the_bundle_check_fails_when_ldd_finds_a_library_of_the_xcb_plugin_nowhere(tmp_path):
    bundle = _bundle(tmp_path)
    ok = _bash(tmp_path, f'check_bundled_xcb "{bundle}"', ldd=RESOLVED)
    assert ok.returncode == 0 and ok.stderr == ""

    unresolved = "\tlibxcb-xinerama.so.0 => not found\n\tlibxcb-shape.so.0 => not found"
    broken = _bash(tmp_path, f'check_bundled_xcb "{bundle}"', ldd=f"{RESOLVED}\n{unresolved}\n{unresolved}")
    assert broken.returncode != 0 and broken.stderr.startswith("error: ")
    assert "Qt's xcb plugin needs nowhere: libxcb-xinerama.so.0 libxcb-shape.so.0. " in broken.stderr


def test_the_bundle_check_fails_without_a_bundled_x_library_or_the_plugin(tmp_path):
    lacking = _bash(tmp_path, f'check_bundled_xcb "{_bundle(tmp_path / "a", without="libxcb-cursor.so.0")}"',
                    ldd=RESOLVED)  # fmt: skip
    assert lacking.returncode != 0 and "the bundle lacks the X libraries libxcb-cursor.so.0" in lacking.stderr
    no_plugin = _bash(tmp_path, f'check_bundled_xcb "{tmp_path / "empty"}"', ldd=RESOLVED)
    assert no_plugin.returncode != 0 and "libqxcb.so" in no_plugin.stderr
    allowed = _bash(tmp_path, f'check_bundled_xcb "{tmp_path / "empty"}"', ldd=RESOLVED, NIBBLE_ALLOW_MISSING_X="1")
    assert allowed.returncode == 0 and allowed.stderr.startswith("warning: ")


def test_a_path_in_the_bundle_longer_than_the_limit_stops_the_build(tmp_path):
    """diffusers' deprecated pipelines' sources went 122 characters deep in the real bundle (2026-11-23), past
    bundle_contents.MAX_BUNDLE_PATH, while the test of the foreseeable files passed."""
    bundle = tmp_path / "Nibble Studio"
    at_limit = bundle / "_internal" / ("a" * 40) / ("b" * 40) / ("c" * 28)  # 10 + 41 + 41 + 28 = 120 characters
    at_limit.parent.mkdir(parents=True)
    at_limit.write_bytes(b"")
    assert _bash(tmp_path, f'check_bundle_paths "{bundle}" 120').returncode == 0
    (at_limit.parent / ("d" * 29)).write_bytes(b"")
    (at_limit.parent / ("e" * 30)).write_bytes(b"")
    long = _bash(tmp_path, f'check_bundle_paths "{bundle}" 120')
    assert long.returncode != 0 and long.stderr.startswith("error: paths in the bundle longer than 120 characters")
    folder = f"_internal/{'a' * 40}/{'b' * 40}"
    assert f"\n122: {folder}/{'e' * 30}\n121: {folder}/{'d' * 29}\n" in long.stderr  # the longest first
