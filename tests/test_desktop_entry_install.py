"""``packaging/install-desktop-entry.sh`` from a folder whose path holds characters that sed's replacement (& | \\)
and the desktop-entry specification's Exec quoting ($ ` " \\ %) give a meaning: the menu entry it writes starts
exactly that folder's program. The entry is read back by the specification's rules (a string value's escapes
first, then the quoting of Exec's arguments, then %%)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32" or shutil.which("bash") is None, reason="needs bash")

STRING_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _string_value(raw: str) -> str:
    """A desktop-entry string value with its escapes (\\s \\n \\t \\r \\\\) undone."""
    return re.sub(r"\\(.)", lambda m: STRING_ESCAPES.get(m[1], m[0]), raw)


def _exec_arguments(raw: str) -> list[str]:
    """Exec's arguments: a string value, then split on spaces outside double quotes, where a backslash escapes
    one of " ` $ \\ ; then %% is a literal % (other field codes do not occur here)."""
    text, args, current, quoted, i = _string_value(raw), [], "", False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current, i = current + text[i + 1], i + 2
            continue
        assert ch not in '\\`$', f"reserved character {ch!r} unescaped: {raw}"  # outside quotes: not allowed
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            args.append(current)
            current = ""
        else:
            current += ch
        i += 1
    assert not quoted, f"unterminated quote: {raw}"
    args.append(current)
    return [re.sub("%(.)", lambda m: "%" if m[1] == "%" else pytest.fail(f"field code {m[0]}"), a) for a in args]


@pytest.mark.parametrize("name", ["Nibble Studio", 'Zoë & Co|x\\y $HOME `id` 100% "q" \'s\' (new)'])
def test_the_menu_entry_starts_the_program_of_the_folder_it_was_installed_from(tmp_path, name):
    folder = tmp_path / "unpacked" / name / "Nibble Studio"
    folder.mkdir(parents=True)
    for rel in ("packaging/install-desktop-entry.sh", "packaging/nibble-studio.desktop",
                "resources/icons/nibble-studio.png"):  # fmt: skip
        shutil.copy(REPO / rel, folder)
    data = tmp_path / "data & more|\\"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(data)}
    done = subprocess.run(["bash", str(folder / "install-desktop-entry.sh")], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry = (data / "applications" / "nibble-studio.desktop").read_text(encoding="utf-8")
    values = dict(line.split("=", 1) for line in entry.splitlines() if "=" in line)
    # the files a file manager opens with the app (%F) passed on after the program
    assert values["Exec"].endswith('" %F'), values["Exec"]
    assert _exec_arguments(values["Exec"].removesuffix(" %F")) == [str(folder / "nibble-studio")], values["Exec"]
    icon = data / "icons" / "hicolor" / "256x256" / "apps" / "nibble-studio.png"
    assert _string_value(values["Icon"]) == str(icon) and icon.is_file()
    assert values["Name"] == "Nibble Studio" and values["Categories"] == "Graphics;2DGraphics;"  # the rest as it was
    assert values["MimeType"] == "image/png;"

    removed = subprocess.run(["bash", str(folder / "install-desktop-entry.sh"), "--remove"], env=env, check=True,
                             capture_output=True)  # fmt: skip
    assert removed.returncode == 0 and not icon.exists()
