"""How a restore says what an image had that no setting here makes, the same for every program's image (the readers
of A1111/Forge text, ``png_metadata``, and of ComfyUI graphs, ``comfyui_passes``): restored without a word, the
settings looked complete and made another picture. Phrases about the file, as the readers' other problems are."""

from __future__ import annotations


def passes_not_restored(what: str, first: str, hires: bool = True, passes: int = 1) -> str:
    """An image made in more passes than the one whose settings were read: ``what`` names the passes after it (A1111's
    "Hires upscale 2"; ComfyUI's upscale and sampler nodes), ``first`` the size new images have (the first pass's),
    ``hires`` whether a later pass made the image larger (a hires fix), ``passes`` how many later passes there are."""
    more = "a second pass" if passes == 1 else f"{passes} more passes"
    if hires:
        larger = "at a larger size" if passes == 1 else "up to a larger size"
        return f"its hires fix ({what}: {more} {larger}) is not restored: new images are its first pass, {first}"
    later = f"second pass ({what}) is" if passes == 1 else f"{passes} later passes ({what}) are"
    return f"its {later} not restored: new images are its first pass, {first}"


def img2img_not_restored(what: str) -> str:
    """An image made from another picture (img2img; ``what``: how the file says so), which no setting here makes."""
    return f"it was made from another picture ({what}), which is not restored: new images start from noise"
