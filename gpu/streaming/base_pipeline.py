"""The pipeline a quantize run calibrates with: the source opened (``open_source``: a diffusers folder brings its
own text encoders; a single-file checkpoint takes them from the base pipeline ``--base`` names,
``base_for_single_file``), and what a single file's parts folder records of that base (``base_pipeline_record``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gpu.bfl_layout import inspect_single_file
from gpu.errors import BadRequestError, ModelLoadError, OutputIsInput, UserError
from gpu.library import ModelEntry, ModelLibrary
from gpu.paths import resolved, same_file
from gpu.pipeline_checks import pipeline_misfit
from gpu.streaming.source import WeightSource, bfl_file_source, diffusers_folder_source, is_bfl_file

if TYPE_CHECKING:  # imported, gpu.quantizer's package would import the engine, which imports this module
    from gpu.quantizer.config import QuantizeConfig
    from gpu.streaming.run_inputs import RunInputs


def open_source(source: str | Path, library: ModelLibrary,
                config: QuantizeConfig) -> tuple[WeightSource, ModelEntry | None, str, torch.dtype]:  # fmt: skip
    """-> (weight source, entry supplying text encoders/defaults or None, name to record, storage dtype)."""
    path = Path(str(source)).expanduser()
    if path.is_file() and (is_bfl_file(path) or config.base):
        # With a base, any file is meant as a single-file checkpoint: one that is none (a truncated download, a
        # LoRA, a pickled .ckpt) is named for what it is.
        src = bfl_file_source(path)
        base = base_for_single_file(path, src, library, config.base) if config.base else None
        return src, base, path.stem, torch.bfloat16
    try:
        entry: ModelEntry = library.resolve(str(source))
    except ModelLoadError:
        if path.is_file():  # said "not an SVDQ checkpoint" of a LoRA, as if quantizing needed a quantized model
            inspect_single_file(path)  # raises, naming what the file is (a LoRA, a pickle, a damaged file, ...)
        raise
    if entry.facts is not None and entry.facts.kind == "svdq":  # said of it as of any other file, it read as a bug
        raise ModelLoadError(f"{entry.name} is already a quantized (SVDQ 4-bit) model: it needs no quantizing",
                             "generate with it as it is (--model, or pick it in the Models panel); to quantize "
                             "again with other settings, start from its 16-bit pipeline folder")  # fmt: skip
    if entry.facts is None or entry.facts.kind != "diffusers":
        raise ModelLoadError(f"{entry.name}: only a 16-bit diffusers pipeline folder can be quantized",
                             QUANTIZE_SOURCES)  # fmt: skip
    if config.base:
        raise BadRequestError(f"a base pipeline is for single-file checkpoints; {entry.name} brings its own text "
                              "encoders", "leave out --base")  # fmt: skip
    storage = torch.float16 if entry.facts.precision == "fp16" else torch.bfloat16
    return diffusers_folder_source(entry.path), entry, entry.name, storage


def check_output_not_read(out_path: Path, source: str | Path, base: str | None, library: ModelLibrary) -> None:
    """Raises ``OutputIsInput`` when ``out_path`` is a file the run reads or lies inside a pipeline folder it reads:
    the single-file ``source``, the source pipeline's folder, the ``base`` pipeline's folder (any file of theirs,
    wherever a link leads). Reads no weights: called before any work. A source or base that cannot be found is left
    to the run, which names it."""
    # Replacing the output may be asked (--overwrite); replacing the model it is made from never is: the run wrote
    # over the 16-bit source it read, or broke its pipeline, and said "wrote …".
    for what, given in (("the model this run quantizes", source), ("the base pipeline that calibrates it", base)):
        read = _read_path(given, library) if given is not None else None
        if read is None:
            continue
        asked = "even when replacing the output is asked"
        if not read.is_dir():
            if same_file(out_path, read):
                raise OutputIsInput(f"{out_path} is {what}: the quantized model would be written over it",
                                    f"choose another output file: a model the run reads is never replaced, {asked}")
            continue
        hint = f"choose an output file outside {read}: a model the run reads is never written into, {asked}"
        folders, files = _read_tree(read)
        if out_path.exists() and any(same_file(out_path, f) for f in files):
            raise OutputIsInput(f"{out_path} is a file of {what}, {read}: the quantized model would be written "
                                "over it", hint)  # fmt: skip
        # Both as given and resolved: a Hugging Face cache's snapshot links its files to blobs outside its folder
        if Path(os.path.abspath(out_path)).is_relative_to(os.path.abspath(read)) or \
                resolved(out_path).is_relative_to(resolved(read)):  # fmt: skip
            raise OutputIsInput(f"{out_path} lies inside {read}, the folder of {what}: the quantized model would "
                                "be written among its files", hint)  # fmt: skip
        # A subfolder may be a link to a folder elsewhere (a text encoder shared between pipelines): its files are
        # read as the pipeline's own, so writing among them breaks it as surely.
        parent = resolved(out_path).parent
        linked = next((f for f in folders if parent.is_relative_to(f)), None)
        if linked is not None:
            raise OutputIsInput(f"{out_path} lies inside {linked}, a folder {read} links to and reads as its own "
                                f"({what}): the quantized model would be written among its files", hint)  # fmt: skip


def _read_tree(folder: Path) -> tuple[set[Path], set[Path]]:
    """-> (folders, files) under ``folder``, resolved, links to folders followed (each folder walked once)."""
    # Path.rglob (Python < 3.13) does not enter a linked folder: its files went unseen.
    folders: set[Path] = set()
    files: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = resolved(dirpath)
        if here in folders:  # a link loop, or two links to one folder
            dirnames[:] = []
            continue
        folders.add(here)
        files.update(resolved(os.path.join(dirpath, name)) for name in filenames)
    return folders, files


def _read_path(given: str | Path, library: ModelLibrary) -> Path | None:
    """The file or folder the source or base ``given`` names (a path, or a library name), as ``open_source`` finds
    it; None when it names none."""
    path = Path(str(given)).expanduser()
    if path.is_file():
        return path
    try:
        return library.resolve(str(given)).path
    except UserError:
        return None


QUANTIZE_SOURCES = "give a diffusers FLUX.1 folder, or a single-file FLUX.1 checkpoint with --base"


def base_for_single_file(path: Path, src: WeightSource, library: ModelLibrary, base: str) -> ModelEntry:
    """The diffusers pipeline whose text encoders, tokenizers, scheduler and defaults calibrate ``path``."""
    entry = library.resolve(base)
    if entry.facts is None or entry.facts.kind != "diffusers":
        raise ModelLoadError(f"base pipeline {base}: not a diffusers pipeline folder",
                             "give the folder of a FLUX.1 pipeline (with text_encoder, text_encoder_2, tokenizers "
                             "and scheduler)")  # fmt: skip
    # what its text encoders and VAE give (calibration runs them, never its transformer): generation's check too
    differs = pipeline_misfit(src.config, entry.path) or []
    if differs:
        raise ModelLoadError(f"{path.name} does not fit the base pipeline {entry.name}: {', '.join(differs)}",
                             "give the pipeline this checkpoint was made for (e.g. FLUX.1-dev)")  # fmt: skip
    return entry


# Where a single file's parts folder records the base pipeline it was calibrated with (its folder), beside the
# resume settings, which keep that base's calibration by content only (a base's name says nothing of its files).
BASE_RECORD = "base pipeline"


def base_pipeline_record(run: RunInputs, config: QuantizeConfig) -> dict[str, str]:
    """What a single file's parts folder records of the base pipeline that calibrates it (``BASE_RECORD``)."""
    return {BASE_RECORD: str(run.base_entry.path)} if config.base and run.base_entry is not None else {}
