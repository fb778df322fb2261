"""The files a loaded model was read from, and who they are without reading them (``loaded_stamp``): what tells the
generation service that a pipeline it holds no longer matches its files (rewritten, replaced, copied over), so that
it loads them again. Torch-free: stats, the small JSON files that list the weights, and transformers' tokenizer
classes (which files a tokenizer is built from: they import no torch)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from gpu.model_hash import FilesStamp, files_stamp
from gpu.pipeline_config import model_index_or_empty, pipeline_components
from gpu.safetensors_header import LOADED_WEIGHTS, loaded_weight_files


def loaded_files(path: Path, base: Path | None = None) -> list[Path]:
    """The files whose bytes make the pipeline that runs the model at ``path``: a pipeline folder's own
    (``pipeline_files``); an SVDQ file, and the files its base pipeline ``base`` gives it, all but that pipeline's
    transformer, which the SVDQ file replaces (None: the base is not known yet, before a load resolves it)."""
    if path.is_dir():
        return pipeline_files(path)
    return [path] + ([] if base is None else pipeline_files(base, skip=("transformer",)))


def loaded_stamp(path: Path, base: Path | None = None) -> FilesStamp:
    """Who the ``loaded_files`` of the model at ``path`` (with ``base``) are, cheaply (``files_stamp``: no reading):
    rewriting, replacing or copying over any of them changes it (``same_files``), the VAE's or a text encoder's as
    much as the transformer's, so a loaded pipeline that no longer matches its files is known."""
    return files_stamp(loaded_files(path, base))


def pipeline_files(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """The files of the pipeline at ``folder`` that loading it reads, but for its components in ``skip``: its
    model_index.json (which class each component is), and for each component its weights that load
    (``loaded_weight_files``) and the small files read with them (``READ_WITH_WEIGHTS``: configs, the scheduler's
    config, a tokenizer's settings; and a tokenizer's vocabulary, ``tokenizer_vocabulary``). Not a file lying beside
    them that loads nothing (a .fp16 variant or a download in progress, a README, a tokenizer's spiece.model beside
    the tokenizer.json it is built from): changing one reloaded nothing. A component whose weights cannot be listed
    adds none (what loads it names why): the stamp then differs from the one its load recorded."""
    files = [folder / "model_index.json"]
    index = model_index_or_empty(folder)
    for component in pipeline_components(index):
        if component not in skip:
            files += _component_files(folder / component, index[component])
    return files


# What diffusers' and transformers' ``from_pretrained`` read beside a component's weights, whatever it is: its config,
# the weights' index, the scheduler's config, a tokenizer's settings (its vocabulary: ``tokenizer_vocabulary``). One
# that is not there is left out of the stamp, as it was of the load.
READ_WITH_WEIGHTS = ("config.json", *(n for n in LOADED_WEIGHTS if n.endswith(".index.json")), "scheduler_config.json",
                     "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")  # fmt: skip


def _component_files(folder: Path, spec: list[Any]) -> list[Path]:
    """The weights that load of a pipeline's component ``folder`` (``transformer/``, ``vae/``, ``tokenizer/``…),
    then the ``READ_WITH_WEIGHTS`` files and, for a tokenizer, its vocabulary (``spec``: the component's
    [library, class] in model_index.json); [] when its weights cannot be listed (unreadable, or an index that lists
    none)."""
    try:
        weights = loaded_weight_files(folder)
    except (OSError, ValueError):
        return []
    return [*weights, *(folder / name for name in (*READ_WITH_WEIGHTS, *tokenizer_vocabulary(folder, spec)))]


# Every vocabulary file a FLUX.1 tokenizer may be built from: what is stamped for a tokenizer class transformers does
# not say the files of (not installed, renamed)
_ANY_VOCABULARY = ("tokenizer.json", "vocab.json", "merges.txt", "spiece.model")


def tokenizer_vocabulary(folder: Path, spec: list[Any]) -> tuple[str, ...]:
    """The names of the files that the tokenizer of ``spec`` (a component's [library, class] in model_index.json,
    e.g. ["transformers", "T5Tokenizer"]) in ``folder`` is built from; none for a component that is no tokenizer.

    A class that reads tokenizer.json (a fast tokenizer: every one in transformers 5, those named ...Fast before)
    is built from that file alone where the folder has it: T5's spiece.model and CLIP's vocab.json and merges.txt
    beside it are not opened, and changing one changes nothing loaded. Without it, or for a class that never reads
    it (transformers 4's slow T5Tokenizer and CLIPTokenizer), the class's own files are (sentencepiece's model, the
    BPE vocabulary and merges), which transformers converts."""
    if len(spec) != 2 or spec[0] != "transformers" or not str(spec[1]).endswith(("Tokenizer", "TokenizerFast")):
        return ()
    names = _vocabulary_names(str(spec[1]))
    if names is None:
        return _ANY_VOCABULARY
    built_from = names.get("tokenizer_file")
    if built_from is not None and (folder / built_from).is_file():
        return (built_from,)
    return tuple(name for key, name in names.items() if key != "tokenizer_file")


@functools.cache
def _vocabulary_names(class_name: str) -> dict[str, str] | None:
    """transformers' ``vocab_files_names`` of its tokenizer class ``class_name`` ({"vocab_file": "spiece.model",
    "tokenizer_file": "tokenizer.json"} for T5's); None when transformers has no such class, or it cannot be
    imported (its loader then fails, and says why)."""
    try:
        import transformers

        names = getattr(transformers, class_name).vocab_files_names
    except Exception:  # noqa: BLE001 - an import error, a missing class, a backend's placeholder that raises on use
        return None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        return None
    return dict(names)
