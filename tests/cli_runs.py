"""Several ``python main.py ...`` command lines run one after another in ONE new Python process.

Each command line pays Python's, torch's and diffusers' start-up (several seconds); tests of user errors run
many. Here each runs as the interpreter runs ``python main.py ARGS``: ``main.py`` executed afresh as ``__main__``
(``runpy``), ``sys.argv`` set, its ``SystemExit`` turned into the exit code as the interpreter does, any other
exception printed by ``sys.excepthook`` (a traceback) with exit code 1, and file descriptors 1 and 2 pointed at
files of their own, so what a command line prints, Python's warnings, logging's last-resort lines and text written
by C code included, is its own. The current folder and the environment are put back before each.

What one process cannot give each command line is a fresh set of imported modules: text printed while a module is
imported (and a warning shown once per place) lands in the first command line that imports it. Every command line's
output is checked by the tests that use this, so such text is still seen; and what Python prints at exit lands in
the last one's. Tests of the process itself (a signal, the exit code of a real run) start ``main.py`` directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_DRIVER = r"""
import json, os, runpy, sys

main_py, cwd, folder, argvs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[0] = os.path.dirname(main_py)  # as for ``python main.py``: its folder first, not the current one
environ = dict(os.environ)
codes = []
for i, argv in enumerate(argvs):
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, name in ((1, "out"), (2, "err")):
        f = os.open(os.path.join(folder, f"{i}.{name}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = [main_py, *argv]
    try:
        runpy.run_path(main_py, run_name="__main__")
        code = 0
    except SystemExit as stop:  # as the interpreter reads it
        code = stop.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    codes.append(code)
    with open(os.path.join(folder, "codes.json"), "w") as f:
        json.dump(codes, f)
"""  # fmt: skip


def run_each(argvs: list[list[str]], *, scratch: Path, cwd: Path = ROOT, timeout: float = 600,
             env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:  # fmt: skip
    """Runs ``python main.py ARGV`` for each ARGV in ``argvs``, in order, in one new process (see above), and
    returns what each exited with and printed, as ``subprocess.run(..., capture_output=True, text=True)`` would.
    ``scratch``: an empty folder for the outputs."""
    scratch.mkdir(parents=True, exist_ok=True)
    driver = subprocess.run([sys.executable, "-c", _DRIVER, str(ROOT / "main.py"), str(cwd), str(scratch),
                             json.dumps(argvs)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                            env=env)  # fmt: skip
    codes_file = scratch / "codes.json"
    codes = json.loads(codes_file.read_text()) if codes_file.exists() else []
    assert driver.returncode == 0 and len(codes) == len(argvs), (driver.returncode, driver.stderr, codes)
    return [subprocess.CompletedProcess([sys.executable, "main.py", *argv], codes[i],
                                        (scratch / f"{i}.out").read_text(), (scratch / f"{i}.err").read_text())
            for i, argv in enumerate(argvs)]  # fmt: skip
