"""Where the quantize wizard's runs write and what they keep: output names that never replace a model nor discard
an earlier run's finished blocks, what a stopped run keeps for a resume, and the RAM budget's default for this
machine. App-side (the wizard's widgets do not call the engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpu.paths import first_free_path
from gpu.quantize_defaults import DEFAULT_RAM_BUDGET_GIB
from gpu.system_info import installed_ram_bytes

__all__ = ["RAM_SHARE", "default_ram_budget_gib", "free_output_path", "installed_ram_bytes", "kept_for_resume"]

# The share of the installed RAM the RAM budget defaults to: the rest is the desktop's, the app's and the
# generation model's (the engine keeps the activations in RAM when they fit the budget, else spills them to disk).
RAM_SHARE = 0.75


def free_output_path(folder: Path, stem: str, config: Any, notes: list[str] | None = None) -> Path:
    """``<stem>.safetensors`` in ``folder``, else ``<stem>-2.safetensors``, …: a file already there is a model the
    user may be using (perhaps in the library), and the quantizer's final rename would replace it silently. A
    name with only a ``.parts`` folder is an interrupted run of that name, which the quantizer resumes, unless
    that folder was made with settings other than ``config``'s (a QuantizeConfig): the engine would then delete
    its blocks (hours of work) to start over, so the name counts as taken, and ``notes`` gets why, for the log."""
    from gpu.streaming.engine import parts_dir, parts_made_with

    def taken(path: Path) -> bool:
        if path.exists():
            return True
        if parts_made_with(parts_dir(path), config) is not False:
            return False  # no parts folder, or one this run resumes
        if notes is not None:
            notes.append(f"{parts_dir(path).name} holds the blocks of an earlier run made with other settings. They "
                         f"stay in {folder} and resume when you run with that run's settings; this run writes a "
                         "name of its own.")  # fmt: skip
        return True

    return first_free_path(folder / f"{stem}.safetensors", taken=taken)


def kept_for_resume(out_path: Path) -> tuple[Path, int]:
    """The parts folder of the run writing ``out_path``, and how many finished blocks it keeps (its manifest)."""
    from gpu.streaming.engine import blocks_kept, parts_dir

    parts = parts_dir(out_path)
    return parts, blocks_kept(parts)


def default_ram_budget_gib(installed: int | None) -> float:
    """The RAM budget's default: the engine's, but at most ``RAM_SHARE`` of the ``installed`` RAM (bytes; None:
    unknown). 24 GiB on a 16 GB laptop kept the activations in RAM: the machine swapped, or the app was killed."""
    if not installed:
        return DEFAULT_RAM_BUDGET_GIB
    return max(1.0, min(DEFAULT_RAM_BUDGET_GIB, round(installed * RAM_SHARE / 2**30, 1)))
