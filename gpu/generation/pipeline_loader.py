"""Turn a library entry into a ready diffusers pipeline (stock ``FluxPipeline``; our transformer inside)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

from gpu.adapters import adapter_named
from gpu.bfl_layout import BASE_MUST_MATCH, base_misfit
from gpu.errors import CheckpointError, ModelLoadError, UserError
from gpu.library import ModelEntry, ModelLibrary, resolved_path
from gpu.model_files import ModelFacts, check_pipeline_complete, check_weight_components, inspect_model_path
from gpu.safetensors_header import read_safetensors_header

if TYPE_CHECKING:
    from gpu.runtime.dispatch import ExecutionPath

SMALL_MODEL_PARAMS = 50_000_000


@dataclass
class LoadedPipeline:
    pipe: Any  # a diffusers pipeline
    entry: ModelEntry
    device: torch.device
    dtype: torch.dtype  # dtype of the 16-bit parts at run time
    base_path: Path  # the diffusers folder that supplied text encoders, VAE and scheduler
    policy: Any = None  # gpu.runtime.memory_policy.MemoryPolicy: where the parts live (None: all on ``device``)
    # (prompt, max length, LoRAs on the text encoders) -> embeddings (gpu.generation.memory)
    prompt_cache: dict = field(default_factory=dict)
    model_hash: str = ""  # the images' "Model hash" of the weights loaded (set by the service as it loads them)


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def runtime_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that have it (sm_80+), fp16 on older ones; fp32 on CPU, where 16-bit math is slow."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def default_size(facts: ModelFacts) -> tuple[int, int]:
    """(width, height) a model makes by default (its nibble.json's; FLUX.1's 1024x1024 where that is no number:
    generating says what is wrong with it)."""
    try:
        return int(facts.defaults.get("width", 1024)), int(facts.defaults.get("height", 1024))
    except (TypeError, ValueError, OverflowError):
        return 1024, 1024


def resolve_base(facts: ModelFacts, library: ModelLibrary, override: str | Path | None) -> Path:
    """The base pipeline folder of an SVDQ file: --base (a folder or, as quantize --base takes it, a library
    name), else the recorded absolute path, library name, or relative path, the first that fits the model
    (``base_misfit``: a base whose text encoders or VAE give other widths would fail mid-generation).

    The absolute path first: it is the pipeline the file was made with. The relative one last: it finds a base
    copied along with the file to another machine, but beside a moved file it may be some other folder."""
    tried = []
    if override:
        candidates = [Path(override).expanduser()]
        if candidates[0].is_file():  # "not found" of a file that is there misled
            raise ModelLoadError(f"--base {override} is a file, not a pipeline folder",
                                 "give the diffusers FLUX.1 folder, the one with model_index.json, or its "
                                 "library name")  # fmt: skip
        if not candidates[0].is_dir():
            try:
                candidates = [library.resolve(str(override)).path]
            except ModelLoadError:
                tried.append(f"library name {str(override)!r}")
    else:
        base = facts.base
        candidates = []
        if base.get("path"):
            candidates.append(Path(base["path"]))
        if base.get("name"):
            try:
                candidates.append(library.resolve(base["name"]).path)
            except ModelLoadError:
                tried.append(f"library name {base['name']!r}")
        if base.get("relative_path"):
            # A file quantized on Windows records "..\models\flux"; on Linux a backslash is no separator, so
            # the base copied along with it was not found there. Windows takes either separator.
            relative = str(base["relative_path"]).replace("\\", "/")
            # The quantizer records it from the real file; the model may be read through a link elsewhere
            # (facts.path is the path it was picked by), whose folder may hold a base of its own: both are tried,
            # the real file's first, as the path was meant.
            for beside in (resolved_path(facts.path).parent, facts.path.parent):
                if (found := resolved_path(beside / relative)) not in candidates:
                    candidates.append(found)
    for c in candidates:
        if (c / "model_index.json").is_file():
            # the transformer is the SVDQ file itself; the rest (encoders, tokenizers, VAE) must be there
            label = f"{facts.path.name}: its base pipeline {c}"
            check_pipeline_complete(c, label, skip=("transformer",))
            check_weight_components(c, label, skip=("transformer",))  # safetensors only: never a pickle
            misfit = model_base_misfit(facts.path, c)
            if not misfit:
                return c
            if override:
                raise ModelLoadError(
                    f"--base {override}: the pipeline {c} does not fit {facts.path.name} ({', '.join(misfit)}: "
                    "the model's setting vs what the base's text encoders and VAE give)",
                    "give the diffusers FLUX.1 pipeline the model was quantized from: its folder or library name",
                )
            tried.append(f"{c}, which does not fit ({', '.join(misfit)})")
            continue
        tried.append(str(c))
    raise ModelLoadError(
        f"{facts.path.name}: its base pipeline (text encoders, VAE) was not found (tried: {', '.join(tried)})",
        hint="pass --base with the diffusers folder the model was quantized from, or its library name",
    )


def model_base_misfit(svdq_file: Path, folder: Path) -> list[str]:
    """``base_misfit`` (the wizard's and the quantizer's check) of an SVDQ file's transformer config against the
    pipeline ``folder``: against its transformer's config, as the wizard checks, and against what its text
    encoders and VAE give (``encoder_widths``: a base whose encoders were swapped keeps its transformer's config).
    Empty when it fits or cannot be told."""
    from gpu.checkpoint.format import read_checkpoint_meta

    try:
        config = read_checkpoint_meta(svdq_file).model_config
    except (UserError, OSError):  # loading the file names what is wrong with it
        return []
    if any(k not in config for k in BASE_MUST_MATCH):
        return []
    found: list[str] = []
    for supplied in (_component_config(folder, "transformer"), encoder_widths(folder)):
        found += [m for m in base_misfit(config, {**config, **supplied}) if m not in found]
    return found


def _component_config(folder: Path, component: str) -> dict[str, Any]:
    """``folder/component/config.json`` ({} when missing, unreadable or no object)."""
    try:
        value = json.loads((folder / component / "config.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def encoder_widths(folder: Path) -> dict[str, Any]:
    """What the text encoders and VAE of the pipeline ``folder`` give a FLUX transformer, in its config's terms
    (``BASE_MUST_MATCH``), from their config.json files: T5's width as joint_attention_dim, CLIP's as
    pooled_projection_dim, the VAE's latent channels in the 2x2 patches FluxPipeline packs as in_channels. A value
    that cannot be read is left out."""
    latent_channels = _component_config(folder, "vae").get("latent_channels")
    found = {
        "joint_attention_dim": _component_config(folder, "text_encoder_2").get("d_model"),
        "pooled_projection_dim": _component_config(folder, "text_encoder").get("hidden_size"),
        "in_channels": 4 * latent_channels if isinstance(latent_channels, int) else None,
    }
    return {k: v for k, v in found.items() if v is not None}


def weights_identity(path: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    """Who a model's weights are, cheaply (no reading): (name, size, mtime_ns, device, inode or file id) of an SVDQ
    file, or of the files in a pipeline folder's transformer/. Rewriting, replacing or copying over any of them
    changes it, so a loaded pipeline that no longer matches its files is known. A file gone is left out (loading
    then names it)."""
    try:
        files = sorted((path / "transformer").iterdir()) if path.is_dir() else [path]
    except OSError:
        return ()
    identity = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        identity.append((str(f), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
    return tuple(identity)


def quiet_libraries() -> None:
    """diffusers/transformers print progress bars and advice meant for notebooks; the app has its own UI."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def check_weights_present(pipe: Any, name: str) -> None:
    """Raises ModelLoadError when a component has parameters its files did not fill: diffusers leaves them on
    the meta device when a config.json asks for more layers than the weights hold."""
    for component, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            missing = [n for n, p in module.named_parameters() if p.device.type == "meta"]
            if missing:
                raise ModelLoadError(
                    f"{name}: the {component} weights do not match its config.json "
                    f"({len(missing)} tensors missing, e.g. {missing[0]})"
                )


@contextlib.contextmanager
def load_errors(name: str, folder: Path) -> Iterator[None]:
    """Errors of diffusers' and transformers' loaders reading the pipeline ``folder`` of the model ``name`` become
    one ``ModelLoadError`` that names the problem (and the damaged file, where a .safetensors one is)."""
    try:
        yield
    except CheckpointError as err:
        raise ModelLoadError(str(err), err.hint) from None
    except torch.OutOfMemoryError:
        raise
    except SafetensorError as err:  # transformers passes it on from a text encoder's file, without naming the file
        raise ModelLoadError(f"{name}: cannot load the pipeline ({_damaged_safetensors(Path(folder)) or err})",
                             "copy or download the model again") from None  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        # RuntimeError: e.g. a config.json that does not match its weights ("Cannot copy out of meta tensor").
        raise ModelLoadError(f"{name}: cannot load the pipeline ({err})") from None


def load_pipeline(
    entry: ModelEntry,
    library: ModelLibrary,
    device: torch.device | None = None,
    base: str | Path | None = None,
) -> LoadedPipeline:
    quiet_libraries()
    device = device or default_device()
    dtype = runtime_dtype(device)
    facts = entry.facts or inspect_model_path(entry.path)
    adapter = adapter_named(facts.architecture)
    pipeline_cls = getattr(importlib.import_module("diffusers"), adapter.pipeline_class)
    with load_errors(entry.name, facts.path):  # finding the base pipeline reads its files too
        base_path = facts.path if facts.kind != "svdq" else resolve_base(facts, library, base)
    with load_errors(entry.name, base_path):
        if facts.kind == "svdq":
            from gpu.checkpoint.skeleton import load_quantized_transformer

            transformer, _ = load_quantized_transformer(facts.path, runtime_dtype=dtype, device=device)
            # use_safetensors: a text encoder or VAE of only pytorch_model.bin is refused, never unpickled
            pipe = pipeline_cls.from_pretrained(base_path, transformer=transformer, dtype=dtype, use_safetensors=True)
        else:
            pipe = pipeline_cls.from_pretrained(base_path, dtype=dtype, use_safetensors=True)
    check_weights_present(pipe, entry.name)
    from gpu.generation.memory import place_pipeline, policy_for_pipeline

    if device.type == "cuda":  # first: the plan counts the kernels' packed copies as replacing these buffers
        from gpu.kernels.repack import enable_canonical_offload

        enable_canonical_offload(pipe.transformer)
    # Chosen from the detected VRAM (or RAM) and the loaded parts' sizes, before anything moves to the GPU.
    policy = policy_for_pipeline(pipe, device, default_size(facts))
    place_pipeline(pipe, device, policy)
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cpu" and facts.transformer_params < SMALL_MODEL_PARAMS:
        # A small model's ops are too short to split across cores: OpenMP start-up and spin-waiting cost
        # more than the work, and 5-20x more when another process holds a core (measured on 2 cores).
        torch.set_num_threads(1)
    return LoadedPipeline(pipe, entry, device, dtype, base_path, policy)


def _damaged_safetensors(folder: Path) -> str | None:
    """'<folder>/text_encoder/model.safetensors: truncated: …' for the first damaged .safetensors file in the
    pipeline ``folder`` (headers only: milliseconds), or None when every header is sound. The whole path: the
    folder may be an SVDQ model's base pipeline, not the model the message starts with."""
    for f in sorted(folder.rglob("*.safetensors")):
        try:
            read_safetensors_header(f)
        except CheckpointError as err:
            return f"{f.parent / str(err)}"
    return None


def plain_path(dtype: torch.dtype, device: torch.device) -> ExecutionPath:
    """The path of a model without SVDQ layers: PyTorch in ``dtype`` on ``device``."""
    from gpu.runtime.dispatch import ExecutionPath, describe_device

    return ExecutionPath(f"PyTorch {str(dtype).removeprefix('torch.')} on {describe_device(device)}")


def execution_path(loaded: LoadedPipeline) -> ExecutionPath:
    """What runs the transformer's linears, in words (shown to the user; ``str()`` of it is the whole text)."""
    from gpu.modules.svdq_linear import SVDQLinear
    from gpu.runtime.dispatch import choose_backend, path_notes

    layers = [m for m in loaded.pipe.transformer.modules() if isinstance(m, SVDQLinear)]
    # W4A4 layers carry almost all the work; report their path when the model has any.
    layers.sort(key=lambda m: m.spec.act_format is None)
    if not layers:
        return plain_path(loaded.dtype, loaded.device)
    _, path = choose_backend(layers[0], loaded.device)
    # e.g. a wide LoRA on Hopper: those layers' low-rank up projections run beside the GEMM
    w4a4 = [m for m in layers if m.spec.act_format is not None]
    for note, count in sorted(path_notes(w4a4, loaded.device).items(), key=lambda kv: -kv[1]):
        path = path.with_note(f"{count} of {len(w4a4)} W4A4 layers with a {note}")
    from gpu.generation.fusion import is_fused

    transformer = loaded.pipe.transformer
    if is_fused(transformer):
        fused = "fused FLUX blocks" + (" with a CUDA graph per size" if loaded.device.type == "cuda" else "")
        report = getattr(transformer, "fusion_report", None) or {}
        if report.get("kept_separate"):
            # e.g. a LoRA pushed Q/K/V's branch over the kernels' limit: those run as separate GEMMs. The reason
            # named is the commonest among the unmerged groups (merged ones carry notes too).
            reasons = Counter(g["reason"] for g in report["groups"] if not g["fused"] and g["reason"])
            total = report["kept_separate"] + report["merged"]
            fused += f" ({report['kept_separate']} of {total} Q/K/V groups unmerged: {reasons.most_common(1)[0][0]})"
        path = path.with_note(fused)
    return path
