"""``main.py --self-test``: a headless check that this installation can generate an image.

It prints where the app runs from and where its data lives, loads the default model (``demo``, shipped in
``resources/models``), generates one image with a fixed prompt and seed, checks the image, prints the
execution path the engine used (e.g. "PyTorch float32 on CPU" or the fused kernels) and exits 0 when every
check passed, 1 otherwise. Support can ask a user to run it and send the printed report; the same report is
written to ``<user data dir>/self-test.txt`` because a windowed Windows executable has no console.

Checks on the image:

* it has the model's size, and every pixel value is finite (a NaN in the pipeline becomes black/garbage);
* it is not blank: the standard deviation of its pixel values (0..1) is above ``MIN_STD`` (a failed run
  usually gives one flat colour or pure noise-free grey);
* for the demo model, the shipped judge (``gpu.demo.judge``, a small CNN trained on the demo world) reads the
  image and must find the prompted object's colour and the background colour, and at least
  ``MIN_ATTRIBUTES`` of the four named attributes (colour, shape, size, background). On CPU with seed 0 all
  four are found; the margin allows for the small numerical differences of GPU paths;
* in the frozen app, every loaded Python module's file lies inside the bundle (no site-packages or source tree
  of the machine leaked in).

Engine only: this module never imports Qt, so it works offscreen and on machines without a display.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

PROMPT = "a large red circle on a blue background"
SEED = 0
MIN_STD = 0.02
MIN_ATTRIBUTES = 3
REPORT_FILE = "self-test.txt"


@dataclass
class SelfTestResult:
    ok: bool
    execution_path: str = ""
    lines: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    image: object = None  # PIL image, when one was generated
    duration_s: float = 0.0


def _environment_lines() -> list[str]:
    from gpu.paths import resources_dir, user_cache_dir, user_data_dir
    from gpu.version import __version__

    frozen = getattr(sys, "frozen", False)
    where = f"bundle {getattr(sys, '_MEIPASS', '')}" if frozen else f"source {Path(__file__).resolve().parent.parent}"
    lines = [
        f"Nibble Studio {__version__} self-test",
        f"  python      {platform.python_version()} on {platform.platform()}",
        f"  run from    {where}",
        f"  resources   {resources_dir()}",
        f"  user data   {user_data_dir()}",
        f"  user cache  {user_cache_dir()}",
    ]
    return lines


def modules_outside_bundle() -> list[str]:
    """Files of loaded modules that are not inside the bundle (frozen app only; [] when all are)."""
    bundle = str(Path(getattr(sys, "_MEIPASS", "")).resolve())
    outside = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        # PyInstaller's bootstrap and frozen stdlib modules carry relative names ("struct.py"): skip those
        if path and os.path.isabs(path) and not str(Path(path).resolve()).startswith(bundle):
            outside.append(f"{name}: {path}")
    return outside


def _device_lines() -> list[str]:
    import torch

    lines = [f"  torch       {torch.__version__}"]
    try:
        import pycuda  # noqa: F401

        lines.append(f"  pycuda      {getattr(pycuda, 'VERSION_TEXT', 'present')}")
    except ImportError:
        lines.append("  pycuda      not installed (fused kernels unavailable; reference path)")
    if torch.cuda.is_available():
        from gpu.kernels.loader import KERNEL_FAMILIES, binary_status, prebuilt_fatbin

        major, minor = torch.cuda.get_device_capability(0)
        arch = f"{major}{minor}"
        lines.append(f"  GPU         {torch.cuda.get_device_name(0)} (sm_{arch})")
        shipped = [s for s in KERNEL_FAMILIES if prebuilt_fatbin(s) is not None]
        lines.append(f"  kernels     prebuilt: {', '.join(shipped) or 'none'}")
        lines.append(f"  binaries    {binary_status(arch) or 'available for every kernel family'}")
    else:
        lines.append("  GPU         none (CUDA not available to torch)")
    return lines


def check_image(image: Image.Image, width: int, height: int) -> dict[str, bool]:
    """The model-independent checks: size, finite values, not blank."""
    import numpy as np

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return {
        f"size {width}x{height}": image.size == (width, height),
        "finite pixels": bool(np.isfinite(arr).all()),
        f"not blank (std {arr.std():.3f} > {MIN_STD})": bool(arr.std() > MIN_STD),
    }


def judge_checks(image: Image.Image, prompt: str) -> dict[str, bool]:
    """The demo judge reads the image; the prompt's colour and background must be found (see module doc)."""
    from gpu.demo.judge import judge_images, load_judge
    from gpu.paths import resources_dir

    judge = load_judge(resources_dir() / "judge")
    scores = judge_images(judge, [image], [prompt])[0]
    named = {a: all(scores[a]) for a in ("colour", "shape", "size", "background") if scores[a]}
    found = [a for a, ok in named.items() if ok]
    return {
        f"judge: colour and background found ({', '.join(found) or 'nothing'} found)": named.get("colour", False)
        and named.get("background", False),
        f"judge: >= {MIN_ATTRIBUTES} of {len(named)} named attributes": len(found) >= MIN_ATTRIBUTES,
    }


def run_self_test(
    model: str | None = None, out: Path | None = None, echo: Callable[[str], None] = print
) -> SelfTestResult:
    """Run every check; ``echo`` receives each report line as it is produced. Never raises."""
    result = SelfTestResult(ok=False)

    def say(line: str) -> None:
        result.lines.append(line)
        echo(line)

    started = time.perf_counter()
    try:
        for line in _environment_lines():
            say(line)
        for line in _device_lines():
            say(line)
        from gpu.generation.request import GenerationRequest
        from gpu.generation.service import GenerationService, save_image
        from gpu.library import DEFAULT_MODEL

        model = model or DEFAULT_MODEL
        service = GenerationService()
        t0 = time.perf_counter()
        info = service.load(model)
        say(f"  model       {info.name} ({info.kind}, {info.precision}) from {info.path}, "
            f"loaded in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        image = service.generate(GenerationRequest(prompt=PROMPT, model=model, seed=SEED))[0]
        s = image.settings
        result.image = image.image
        result.execution_path = s["execution_path"]
        say(f"  generated   {s['width']}x{s['height']}, {s['steps']} steps, seed {SEED}, "
            f"{time.perf_counter() - t0:.1f} s: \"{PROMPT}\"")
        say(f"  execution   {result.execution_path}")
        result.checks.update(check_image(image.image, s["width"], s["height"]))
        if info.name.startswith("demo"):
            result.checks.update(judge_checks(image.image, PROMPT))
        if getattr(sys, "frozen", False):  # code must come from the bundle, never from a Python on the machine
            outside = modules_outside_bundle()
            for line in outside[:5]:
                say(f"  outside     {line}")
            result.checks[f"every loaded Python module is inside the bundle ({len(outside)} outside)"] = not outside
        if out is not None:
            save_image(image, out)
            say(f"  image       written to {out}")
        for name, ok in result.checks.items():
            say(f"  {'PASS' if ok else 'FAIL'}        {name}")
        result.ok = bool(result.checks) and all(result.checks.values())
    except Exception as err:  # a support tool reports every failure, never a bare traceback exit
        say(f"  ERROR       {type(err).__name__}: {err}")
        for line in traceback.format_exc().rstrip().splitlines():
            result.lines.append("    " + line)
        result.ok = False
    result.duration_s = time.perf_counter() - started
    say(f"self-test {'PASSED' if result.ok else 'FAILED'} in {result.duration_s:.1f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """``main.py --self-test`` and ``python -m gpu.self_test``: run, print, write the report; 0 = passed."""
    ap = argparse.ArgumentParser(prog="self-test", description="Check that Nibble Studio can generate an image.")
    ap.add_argument("--model", default=None, help="library name or path (default: the default model, demo)")
    ap.add_argument("--out", type=Path, default=None, help="also save the generated image here")
    args, _ = ap.parse_known_args(argv)
    from gpu.console import show

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # nothing here opens a window; keep it that way

    # The commands' writer: a console that cannot be written (> /dev/full) is said as such, not as a full disk
    result = run_self_test(args.model, args.out, show)
    _write_report(result, show)
    return 0 if result.ok else 1


def _write_report(result: SelfTestResult, echo: Callable[[str], None]) -> None:
    """``result``'s lines into the data folder's report file, atomically: a failed write (a full disk) keeps the
    last run's report whole. A report that cannot be written is said; the check's own result stands."""
    from gpu.atomic import atomic_write_bytes
    from gpu.errors import OutputError
    from gpu.paths import user_data_dir, user_data_path

    report = user_data_path() / REPORT_FILE
    # a path with bytes that are no UTF-8 (a surrogate escape) is written escaped rather than failing the report
    text = ("\n".join(result.lines) + "\n").encode("utf-8", errors="backslashreplace")
    try:
        user_data_dir()  # made if missing, as every output folder is
        atomic_write_bytes(report, text)
    except (OSError, OutputError) as exc:
        echo(f"report not written to {report}: {exc}")
        return
    echo(f"report written to {report}")


def run_as_module() -> int:
    """``python -m gpu.self_test``: ``main``, with what ``main.py --self-test`` says instead of a traceback: a
    console that cannot be written (``> /dev/full``) as one ``error:`` line on stderr, exit 2; Ctrl-C as
    "error: cancelled", exit 130 (the shell's code for it)."""
    from gpu.console import CANCELLED_EXIT
    from gpu.errors import UserError

    try:
        return main()
    except UserError as err:
        sys.stderr.write(f"error: {err.text}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: cancelled\n")
        return CANCELLED_EXIT


if __name__ == "__main__":
    sys.exit(run_as_module())
