"""The example LoRAs the app ships (resources/loras): their folder, and the name by which one the user removed from
the LoRA panel is kept out at the next starts (``Settings.removed_examples``)."""

from __future__ import annotations

from pathlib import Path

from gpu.paths import resolved as resolve_path
from gpu.paths import resources_dir


def examples_folder() -> Path:
    """The folder of the example LoRAs the app ships."""
    return resources_dir() / "loras"


def example_name(path: Path) -> str | None:
    """The path below resources/loras of an example LoRA the app ships ("monochrome-style.safetensors"), by which
    ``removed_examples`` keeps it (a bundle's resources may lie elsewhere at each start); None for another file."""
    try:
        return resolve_path(path).relative_to(resolve_path(examples_folder())).as_posix()
    except ValueError:
        return None
