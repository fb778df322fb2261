"""The files a loaded model was read from, and who they are without reading them (``loaded_stamp``): what tells the
generation service that a pipeline it holds no longer matches its files (rewritten, replaced, copied over), so that
it loads them again. Torch-free: stats, and the small JSON files that list the weights."""

from __future__ import annotations

from pathlib import Path

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
    (``loaded_weight_files``) and the small files read with them (``READ_WITH_WEIGHTS``: configs, a tokenizer's
    vocabulary, the scheduler's config). Not a file lying beside them that loads nothing (a .fp16 variant or a
    download in progress, a README): changing one reloaded nothing. A component whose weights cannot be listed adds
    none (what loads it names why): the stamp then differs from the one its load recorded."""
    files = [folder / "model_index.json"]
    for component in pipeline_components(model_index_or_empty(folder)):
        if component not in skip:
            files += _component_files(folder / component)
    return files


# What diffusers' and transformers' ``from_pretrained`` read beside a component's weights: its config, the weights'
# index, the scheduler's config, a tokenizer's files (CLIP's vocab.json and merges.txt, T5's spiece.model). One that
# is not there is left out of the stamp, as it was of the load.
READ_WITH_WEIGHTS = ("config.json", *(n for n in LOADED_WEIGHTS if n.endswith(".index.json")), "scheduler_config.json",
                     "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                     "vocab.json", "merges.txt", "spiece.model")  # fmt: skip


def _component_files(folder: Path) -> list[Path]:
    """The weights that load of a pipeline's component ``folder`` (``transformer/``, ``vae/``, ``tokenizer/``…),
    then the ``READ_WITH_WEIGHTS`` files; [] when its weights cannot be listed (unreadable, or an index that lists
    none)."""
    try:
        weights = loaded_weight_files(folder)
    except (OSError, ValueError):
        return []
    return [*weights, *(folder / name for name in READ_WITH_WEIGHTS)]
