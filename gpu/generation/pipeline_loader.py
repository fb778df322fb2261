"""Turn a library entry into a ready diffusers pipeline (stock ``FluxPipeline``; our transformer inside)."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

import gpu.paths
from gpu.adapters import adapter_named
from gpu.errors import CheckpointError, ModelLoadError, UserError
from gpu.generation.loaded_files import loaded_stamp
from gpu.library import ModelEntry, ModelLibrary, current_path
from gpu.model_files import ModelFacts, inspect_model_path
from gpu.model_hash import FilesStamp, with_heads
from gpu.out_of_memory import gpu_ran_out, ram_ran_out
from gpu.pipeline_checks import BASE_MUST_MATCH, check_pipeline_complete, check_weight_components, pipeline_misfit
from gpu.pipeline_config import transformer_config
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
    base_path: Path  # the diffusers folder that supplied text encoders, VAE and (but on a stand-in) scheduler
    # Who the files it is read from were (``loaded_stamp``, heads included) before the load read them, an SVDQ file's
    # base pipeline's too: what the service holds its files to after the load and before each job
    read_from: FilesStamp
    policy: Any = None  # gpu.runtime.memory_policy.MemoryPolicy: where the parts live (None: all on ``device``)
    # (prompt, max length, LoRAs on the text encoders) -> embeddings (gpu.generation.memory)
    prompt_cache: dict = field(default_factory=dict)
    model_hash: str = ""  # the images' "Model hash" of the weights loaded (set by the service as it loads them)
    # a stand-in base said (``resolve_base``), the model's recorded scheduler run in place of its base's: each job's
    base_notes: list[str] = field(default_factory=list)


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def runtime_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that have it (sm_80+), fp16 on older ones, whose MMAs take their Turing forms (one boundary:
    ``gpu.kernels.mma_forms``); fp32 on CPU, where 16-bit math is slow."""
    if device.type != "cuda":
        return torch.float32
    from gpu.kernels import mma_forms

    return torch.float16 if mma_forms.uses_turing_mma(device) else torch.bfloat16


def default_size(facts: ModelFacts) -> tuple[int, int]:
    """(width, height) a model makes by default (its nibble.json's; FLUX.1's 1024x1024 where that is no number:
    generating says what is wrong with it)."""
    try:
        return int(facts.defaults.get("width", 1024)), int(facts.defaults.get("height", 1024))
    except (TypeError, ValueError, OverflowError):
        return 1024, 1024


def resolve_base(
    facts: ModelFacts, library: ModelLibrary, override: str | Path | None, notes: list[str] | None = None
) -> Path:
    """The base pipeline folder of an SVDQ file: --base (a folder or, as quantize --base takes it, a library
    name), else the recorded absolute path, library name, or relative path, the first that fits the model
    (``pipeline_misfit``: a base whose text encoders or VAE give other widths would fail mid-generation), else a
    pipeline of the library that fits it (``library_stand_in``), which is said in ``notes``.

    The absolute path first: it is the pipeline the file was made with. The relative one last: it finds a base
    copied along with the file to another machine, but beside a moved file it may be some other folder. A built-in
    model (under ``resources_dir()``) is the exception: its relative path first, the base shipped beside it, since
    the absolute path it records is the build machine's checkout, which another checkout (or a bundle checked on
    that machine) would otherwise use. Candidates are looked at lazily: the library (every model inspected) is
    asked for the recorded name only when the absolute path did not do. A folder in a Hugging Face cache is read
    in its current revision (``current_path``): a ``models--org--name`` folder, or a snapshot since deleted (said in
    ``notes``); a recorded snapshot still there is the one used.

    A model quantized on another machine records that machine's paths, and the app has no --base: where none of
    the recorded bases is here, the library's pipeline that fits it runs it (its text encoders and VAE are what
    the file was calibrated with only if it is the same pipeline, which is why the user is told)."""
    tried: list[str] = []
    misfits = False
    not_pipeline: Path | None = None  # a recorded base folder that is here without model_index.json
    candidates = _override_bases(override, library, tried) if override else _recorded_bases(facts, library, tried)
    for c in candidates:
        if (c / "model_index.json").is_file():
            check_base_complete(c, f"{facts.path.name}: its base pipeline {c}")
            misfit = model_base_misfit(facts.path, c)
            if not misfit:
                if notes is not None and not override and (revision := _other_revision(facts, c)):
                    notes.append(revision)
                return c
            if override:
                raise ModelLoadError(
                    f"--base {override}: the pipeline {c} does not fit {facts.path.name} ({', '.join(misfit)}: "
                    "the model's setting vs what the base gives)",
                    "give the diffusers FLUX.1 pipeline the model was quantized from: its folder or library name",
                )
            tried.append(f"{c}, which does not fit ({', '.join(misfit)})")
            misfits = True
            continue
        if c.is_dir():  # "not found" of a folder that is there misled
            if override:
                raise ModelLoadError(f"--base {override}: {c} is not a pipeline folder (it has no model_index.json)",
                                     PICK_PIPELINE)  # fmt: skip
            tried.append(f"{c}, which is not a pipeline folder")
            not_pipeline = not_pipeline or c
            continue
        tried.append(str(c))
    # a base that is there but does not fit is no base "not found": the user would look for a missing folder
    problem = "does not fit it" if misfits else "was not found"
    if not override:
        stand_in = library_stand_in(facts, library)
        if stand_in is not None:
            recorded = facts.base.get("name") or facts.base.get("path") or "unnamed"
            if notes is not None:
                where = "does not fit it" if misfits else (
                    f"is not a pipeline folder here ({not_pipeline} has no model_index.json)" if not_pipeline
                    else "is not on this machine")  # fmt: skip
                notes.append(f"the base pipeline {facts.path.name} records ({recorded}) {where}; it runs with the "
                             f"library's pipeline {stand_in.name!r} ({stand_in.path}), which fits it"
                             + _other_kind(facts, stand_in))  # fmt: skip
            return stand_in.path
        tried.append("the library's pipelines, none of which fits it")
    raise NoBase(
        f"{facts.path.name}: its base pipeline (text encoders, VAE) {problem} (tried: {', '.join(tried)})",
        hint="give --base the diffusers folder the model was quantized from, or its library name"
        if override else ADD_BASE,
        problem=problem,
    )


def _other_revision(facts: ModelFacts, used: Path) -> str:
    """The note for the base ``used`` where it is the current revision of the Hugging Face cache repository whose
    snapshot the SVDQ file of ``facts`` records, that snapshot being gone; "" for any other base."""
    recorded = Path(facts.base.get("path") or "")
    if not facts.base.get("path") or used == recorded or recorded.exists() or used != current_path(recorded):
        return ""
    return (f"the revision of the base pipeline {facts.path.name} was made with ({recorded}) is no longer in the "
            f"Hugging Face cache; it runs with the revision there now ({used}), whose text encoders may not be the "
            "ones it was calibrated with")


def recorded_base_here(facts: ModelFacts, library: ModelLibrary) -> Path | None:
    """The first base pipeline the SVDQ file of ``facts`` records (``_recorded_bases``) that is here, complete and
    fits it, as ``resolve_base`` would take it (model_index.json, every component with safetensors weights,
    ``model_base_misfit`` empty), None when none is: what tells a model run with a stand-in base that its own base
    has come since. Asked before each job: a few stats and small configs read, no model of the library inspected
    (``_recorded_bases``). A base still being copied into place is not here yet: the stand-in runs on, where
    reloading onto it failed the job and left no model loaded."""
    for c in _recorded_bases(facts, library, []):
        if (c / "model_index.json").is_file() and _complete_base(c) and not model_base_misfit(facts.path, c):
            return c
    return None


def check_base_complete(folder: Path, label: str) -> None:
    """Raises ModelLoadError (named by ``label``) unless the pipeline ``folder`` has what an SVDQ file takes from
    its base: every component but the transformer (the SVDQ file is it), each with safetensors weights (never a
    pickle)."""
    check_pipeline_complete(folder, label, skip=("transformer",))
    check_weight_components(folder, label, skip=("transformer",))


def _complete_base(folder: Path) -> bool:
    """Whether ``check_base_complete`` passes for ``folder``."""
    try:
        check_base_complete(folder, folder.name)
    except UserError:
        return False
    return True


# What gives an SVDQ file a base pipeline, in words for the app and the command line alike (the app has no --base:
# the command line says that one where it refuses, ``main.cmd_generate``)
ADD_BASE = ("add the diffusers FLUX.1 pipeline folder the model was quantized from to the library (in the app: "
            "\"Add folder…\" in the Models panel)")  # fmt: skip
PICK_PIPELINE = "give the diffusers FLUX.1 folder, the one with model_index.json, or its library name"


def library_stand_in(facts: ModelFacts, library: ModelLibrary) -> ModelEntry | None:
    """The library's pipeline that can run the SVDQ file of ``facts`` in place of the base it records: of its
    architecture, complete but for its transformer, known to fit it (``pipeline_misfit`` empty: not merely not
    known not to fit), the first in the library's order (built-in ones first, then the user's in the order they
    were added) of the file's kind (``model_takes_guidance``: a guidance-distilled FLUX.1-dev's, or a
    FLUX.1-schnell's, whose scheduler shifts its timesteps otherwise), else the first. None when none fits.
    (The pipeline of the name the file records is no candidate: ``resolve_base`` takes it where it fits.)"""
    fitting = []
    for entry in library.entries():
        if entry.facts is None or entry.kind != "diffusers" or entry.facts.architecture != facts.architecture:
            continue
        if _complete_base(entry.path) and _misfit(facts.path, entry.path) == []:
            fitting.append(entry)
    guided = model_takes_guidance(facts)
    # min keeps the library's order among equals
    return min(fitting, key=lambda e: model_takes_guidance(e.facts) != guided, default=None)


def model_takes_guidance(facts: Any) -> bool:
    """``gpu.generation.service.takes_guidance`` of a model before it is loaded, from its transformer's config on
    disk (an SVDQ file's metadata, a pipeline folder's transformer/config.json); True when that cannot be read
    (loading names why): its negative prompt is then taken as used at any guidance. ``facts``: ``ModelFacts``."""
    try:
        config = checkpoint_meta(facts.path).model_config if facts.kind == "svdq" else transformer_config(facts.path)
    except (UserError, OSError):
        return True
    return bool(config.get("guidance_embeds", False))


def _other_kind(facts: ModelFacts, stand_in: ModelEntry) -> str:
    """What the note of a stand-in base adds where it is a pipeline of the other kind than the SVDQ file's model
    (``library_stand_in`` takes one only where no pipeline of its kind fits): its scheduler may not be the model's.
    Nothing where the file records its scheduler: it runs with that one (``load_pipeline`` says so where it is not
    the stand-in's)."""
    guided = model_takes_guidance(facts)
    if model_takes_guidance(stand_in.facts) == guided or _records_scheduler(facts.path):
        return ""
    kinds = ("a model without guidance input (FLUX.1-schnell's kind)", "a guidance-distilled model (FLUX.1-dev's "
             "kind)")  # fmt: skip
    return (f" but is the pipeline of {kinds[not guided]} and the model is {kinds[guided]}: its scheduler may not "
            "be the model's, and the images then differ from its own base's")


def _records_scheduler(svdq_file: Path) -> bool:
    """Whether the SVDQ file's metadata records the scheduler it was made with (False where it cannot be read:
    loading names what is wrong with it)."""
    try:
        return bool(checkpoint_meta(svdq_file).scheduler)
    except (UserError, OSError):
        return False


class NoBase(ModelLoadError):
    """No base pipeline of an SVDQ file was found (``problem``: "was not found"), or none that fits it ("does not
    fit it")."""

    def __init__(self, message: str, hint: str = "", problem: str = "was not found") -> None:
        super().__init__(message, hint)
        self.problem = problem


def _override_bases(override: str | Path, library: ModelLibrary, tried: list[str]) -> Iterator[Path]:
    """The folder ``--base`` names: a folder, else a library name (one not found noted in ``tried``, and the path
    tried all the same, to be named as not found). A file, given by its path or by the library name of a model
    file (a 4-bit model's own name, where its pipeline was meant), is refused as the file it is: "not found" of a
    file that is there misled."""
    given = Path(override).expanduser()
    if given.is_dir():
        yield current_path(given)  # a Hugging Face cache's models--org--name: its current revision
        return
    found = given  # and named as the folder it is not, where no library model has the name
    if not given.is_file():
        try:
            found = library.resolve(str(override)).path
        except ModelLoadError:
            tried.append(f"library name {str(override)!r}")
    if found.is_file():
        named = "" if found == given else f" names the model file {found}, which"
        raise ModelLoadError(f"--base {override}{named} is a file, not a pipeline folder", PICK_PIPELINE)
    yield found


def _recorded_bases(facts: ModelFacts, library: ModelLibrary, tried: list[str]) -> Iterator[Path]:
    """The base folders an SVDQ file records, in ``resolve_base``'s order, each once; a library name not listed is
    noted in ``tried``. The name is looked up in the library's list (``listed_path``), no model inspected: a base
    pipeline is checked as a base (its transformer left out, the SVDQ file is it), where the library's ``resolve``
    refused a listed pipeline whose transformer weights the user deleted, and inspected every model before each job
    of a model run with a stand-in base (``recorded_base_here``), twice on a miss."""
    base = facts.base

    def absolute() -> Iterator[Path]:
        if base.get("path"):
            # the pipeline it was made with while it is there (a cache's older revision too: the file was calibrated
            # with its encoders); a cache snapshot since deleted, or its repository folder: its current one
            recorded = Path(base["path"])
            yield recorded if (recorded / "model_index.json").is_file() else current_path(recorded)

    def by_name() -> Iterator[Path]:
        if base.get("name"):
            listed = library.listed_path(str(base["name"]))
            if listed is not None:
                yield listed
            else:
                tried.append(f"library name {base['name']!r}")

    def relative() -> Iterator[Path]:
        if base.get("relative_path"):
            # A file quantized on Windows records "..\models\flux"; on Linux a backslash is no separator, so
            # the base copied along with it was not found there. Windows takes either separator.
            relative = str(base["relative_path"]).replace("\\", "/")
            # The quantizer records it from the real file; the model may be read through a link elsewhere
            # (facts.path is the path it was picked by), whose folder may hold a base of its own: both are tried,
            # the real file's first, as the path was meant.
            for beside in (gpu.paths.resolved(facts.path).parent, facts.path.parent):
                yield gpu.paths.resolved(beside / relative)

    built_in = gpu.paths.resolved(facts.path).is_relative_to(gpu.paths.resolved(gpu.paths.resources_dir()))
    seen: list[Path] = []
    for source in (relative, absolute, by_name) if built_in else (absolute, by_name, relative):
        for c in source():
            if c not in seen:
                seen.append(c)
                yield c


def model_base_misfit(svdq_file: Path, folder: Path) -> list[str]:
    """``pipeline_misfit`` (the wizard's and the quantizer's check) of an SVDQ file's transformer config against
    the pipeline ``folder``: what its text encoders and VAE give, its transformer's config only for what they do not
    (an SVDQ file never runs its base's transformer). Empty when it fits or cannot be told."""
    return _misfit(svdq_file, folder) or []


def _misfit(svdq_file: Path, folder: Path) -> list[str] | None:
    """``model_base_misfit``, None where it cannot be told (the file or the folder unreadable, or a value the
    file does not record)."""
    try:
        config = checkpoint_meta(svdq_file).model_config
    except (UserError, OSError):  # loading the file names what is wrong with it
        return None
    if any(k not in config for k in BASE_MUST_MATCH):
        return None
    return pipeline_misfit(config, folder)


# One describe or job reads each SVDQ file's metadata and each header once (``one_read_each``): path -> (size,
# mtime_ns, what was read), per kind of read. None outside such a call: nothing is kept from one call to the next.
_READS: ContextVar[dict[tuple[str, str], tuple[int, int, Any]] | None] = ContextVar("reads", default=None)


@contextlib.contextmanager
def one_read_each() -> Iterator[None]:
    """Within the block, ``checkpoint_meta`` and ``safetensors_header`` read each file once while its size and
    time stay the same (describing an SVDQ model read its metadata five times)."""
    token = _READS.set({}) if _READS.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _READS.reset(token)


def _read_once(kind: str, path: Path, read: Callable[[Path], Any]) -> Any:
    reads = _READS.get()
    try:
        st = os.stat(path)
    except OSError:
        reads = None  # the read says what is wrong, in its words
    if reads is None:
        return read(path)
    key, stamp = (kind, str(path)), (st.st_size, st.st_mtime_ns)
    if key not in reads or reads[key][:2] != stamp:
        reads[key] = (*stamp, read(path))
    return reads[key][2]


def checkpoint_meta(path: Path) -> Any:
    """``gpu.checkpoint.format.read_checkpoint_meta``, once per file in a ``one_read_each`` block."""
    from gpu.checkpoint.format import read_checkpoint_meta

    return _read_once("meta", Path(path), read_checkpoint_meta)


def safetensors_header(path: Path) -> dict[str, Any]:
    """``read_safetensors_header``'s checked header, once per file in a ``one_read_each`` block."""
    return _read_once("header", Path(path), lambda p: read_safetensors_header(p)[1])


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
        if gpu_ran_out(err) or ram_ran_out(err):  # no damage: said as the memory it is by the caller
            raise
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
    notes: list[str] = []
    with load_errors(entry.name, facts.path):  # finding the base pipeline reads its files too
        base_path = facts.path if facts.kind != "svdq" else resolve_base(facts, library, base, notes)
    # Stamped before they are read, once the base is known: stamped after the load, a VAE or text encoder replaced
    # while the base was read was taken for the one loaded until it changed again
    read_from = with_heads(loaded_stamp(entry.path, base_path))
    with load_errors(entry.name, base_path):
        if facts.kind == "svdq":
            from gpu.checkpoint.scheduler import checked_scheduler, scheduler_differences
            from gpu.checkpoint.skeleton import load_quantized_transformer

            meta = checkpoint_meta(facts.path)
            own = checked_scheduler(facts.path.name, meta.architecture, meta.scheduler)  # refused before the load
            transformer, _ = load_quantized_transformer(facts.path, runtime_dtype=dtype, device=device)
            # use_safetensors: a text encoder or VAE of only pytorch_model.bin is refused, never unpickled
            pipe = pipeline_cls.from_pretrained(base_path, transformer=transformer, dtype=dtype, use_safetensors=True)
            differs = scheduler_differences(own, pipe.scheduler) if own is not None else []
            if differs and not _records_as_base(facts, base_path):  # e.g. FLUX.1-schnell's for a dev model
                notes.append(f"{facts.path.name} runs with the scheduler it records it was made with, not its base "
                             f"pipeline's ({', '.join(differs)}: the model's vs the base's)")  # fmt: skip
                pipe.scheduler = own
            elif differs:  # the very folder it was made with: a scheduler the user edited there is the user's
                notes.append(f"{facts.path.name} runs with its base pipeline's scheduler, not the one it records it "
                             f"was made with ({', '.join(differs)}: the model's vs the base's)")  # fmt: skip
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
    return LoadedPipeline(pipe, entry, device, dtype, base_path, read_from, policy, base_notes=notes)


def _records_as_base(facts: ModelFacts, used: Path) -> bool:
    """Whether ``used``, the base pipeline the SVDQ file of ``facts`` runs with, is the very folder the file records
    as its base (the same folder: links resolved, ``gpu.paths.same_file``), whoever chose it: that folder's
    scheduler is the one the model was made with, or one the user set there since. Any other folder (a stand-in,
    one named with --base, a newer revision of a Hugging Face cache whose scheduler may have changed) is not."""
    recorded = facts.base.get("path")
    return bool(recorded) and gpu.paths.same_file(str(recorded), used)


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
