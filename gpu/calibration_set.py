"""The calibration prompts and trajectory steps a quantize run uses, torch-free: the engine reads them to run, and
the wizard on its GUI thread to show what a run of the chosen source will use (how many prompts there are, whose,
and the steps a run takes by default)."""

from __future__ import annotations

from pathlib import Path

from gpu.errors import ModelLoadError
from gpu.paths import resources_dir

DEFAULT_PROMPTS_FILE = "calibration_prompts.txt"
MAX_DEFAULT_CALIB_STEPS = 8  # calibration trajectories are short: samples need coverage of t, not pretty images
BUILT_IN_PROMPTS = "the built-in everyday prompts"
OWN_PROMPTS = "the model's own calibration prompts"


def prompts_file(model_folder: Path | None, defaults: dict) -> tuple[Path, bool]:
    """-> (the calibration prompts file a run reads, whether it is the model's own): nibble.json's
    ``calibration_prompts`` in ``model_folder`` where it is a file, else the shipped set."""
    own = defaults.get("calibration_prompts")
    if own is not None and not isinstance(own, str):  # a hand-edited nibble.json: 5, a list
        raise ModelLoadError(f"nibble.json in {model_folder}: calibration_prompts is {own!r}, not a file name",
                             "give it the name of a text file beside it, one prompt per line, or leave it out")
    path = model_folder / own if own and model_folder is not None else None
    if path is not None and path.is_file():
        return path, True
    return resources_dir() / DEFAULT_PROMPTS_FILE, False


def available_prompts(model_folder: Path | None, defaults: dict) -> list[str]:
    """Every prompt of the set a run calibrates with (``prompts_file``), in order; ModelLoadError for a file that is
    not UTF-8 text, cannot be read or holds no prompt, or a ``calibration_prompts`` that names no file."""
    path, _own = prompts_file(model_folder, defaults)
    # UTF-8 whatever the locale (Windows would read cp1252: other prompts, another model); "-sig" drops the byte
    # order mark Windows Notepad may put first, which would otherwise start the first prompt.
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"the calibration prompts file {path} is not UTF-8 text (byte {err.start})",
                             "save it as UTF-8 (one prompt per line)") from None  # fmt: skip
    except OSError as err:  # unreadable (its rights, a drive gone): the wizard reads it on its window's thread too
        raise ModelLoadError(f"the calibration prompts file {path} cannot be read ({err.strerror or err})",
                             "check that you may read it") from None  # fmt: skip
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ModelLoadError(f"the calibration prompts file {path} holds no prompts",
                             "write one prompt per line (lines starting with # are comments)")  # fmt: skip
    return prompts


def calibration_prompts(model_folder: Path | None, defaults: dict, count: int) -> list[str]:
    """The first ``count`` prompts of the set a run calibrates with (all of them where it holds fewer)."""
    return available_prompts(model_folder, defaults)[:count]


def model_steps(defaults: dict, folder: Path | None = None) -> int:
    """The model's own steps (nibble.json's ``steps``, FLUX.1-dev's 28 without one); ModelLoadError for one that is
    no whole number of at least 1 (a hand-edited "16 steps": a ValueError in the wizard's slot, a traceback from
    the command line), naming the file in the pipeline ``folder`` the defaults came from, where given: a single
    file's run reads its base's, which the command line's user had no reason to suspect."""
    steps = defaults.get("steps", 28)
    if isinstance(steps, float) and steps.is_integer():  # 28.0 is 28
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        where = folder / "nibble.json" if folder is not None else "nibble.json"
        raise ModelLoadError(f"{where}: steps is {steps!r}, not a whole number of steps",
                             "give it a number such as 28, or leave it out")  # fmt: skip
    return steps


def calibration_steps(config_steps: int | None, defaults: dict, folder: Path | None = None) -> int:
    """The steps of each calibration trajectory: ``config_steps``, else the model's own steps (``model_steps`` of
    the defaults read from the pipeline ``folder``), at most ``MAX_DEFAULT_CALIB_STEPS``."""
    return config_steps or min(model_steps(defaults, folder), MAX_DEFAULT_CALIB_STEPS)


def prompts_cut(asked: int, available: int, own: bool) -> str:
    """What a run says when ``asked`` prompts are more than its set holds (``available``; ``own``: the model's own set,
    else the built-in one): it uses them all. It said nothing, and the model file records the prompts used."""
    return (f"{asked} calibration prompts asked, {available} available ({OWN_PROMPTS if own else BUILT_IN_PROMPTS}): "
            f"all {available} used")  # fmt: skip
