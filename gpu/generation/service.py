"""The generation service: keeps one pipeline loaded and turns requests into images.

Used by the CLI and by the app's worker thread; it never touches a GUI. Progress and cancel go through
callbacks: ``on_progress`` after each denoising step, ``should_cancel`` polled at each step."""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gpu.errors import BadRequestError, ModelLoadError, OutOfMemory, UserError
from gpu.generation.fusion import fuse_if_allowed, fuse_mode, sync_fusion
from gpu.generation.loaded_files import loaded_stamp
from gpu.generation.memory import TEXT_ENCODERS, policy_for_pipeline, replan, transformer_weight_bits
from gpu.generation.pipeline_loader import (
    LoadedPipeline,
    NoBase,
    checkpoint_meta,
    default_device,
    default_size,
    execution_path,
    load_pipeline,
    model_takes_guidance,
    one_read_each,
    recorded_base_here,
)
from gpu.generation.png_metadata import encodable
from gpu.generation.preview import latent_preview
from gpu.generation.prompt_length import PromptLength, PromptMeter, negative_prompt_used, unused_negative_note
from gpu.generation.request import (
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    SEED_MAX,
    GeneratedImage,
    GenerationCancelled,
    GenerationRequest,
    ProgressEvent,
    check_batch_count,
    largest_first_seed,
)
from gpu.library import ModelEntry, ModelLibrary, model_name
from gpu.lora.fit import Layer
from gpu.lora.layer_files import file_layers
from gpu.lora.metadata import LoraRequest, strength_words
from gpu.model_hash import FilesStamp, model_hash, same_files
from gpu.model_libraries import load_model_libraries
from gpu.out_of_memory import gpu_ran_out, ram_ran_out
from gpu.runtime.memory_policy import MemoryPolicy, ModelSizes, try_instead
from gpu.version import APP_NAME, __version__

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL import Image

    from gpu.runtime.dispatch import ExecutionPath

log = logging.getLogger(__name__)

SAMPLER_NAME = "Euler"  # FlowMatchEulerDiscreteScheduler, what FLUX pipelines ship with
PREVIEW_EVERY = 4
MAX_SIDE = 2048
MAX_SEQUENCE_LENGTH = 512  # FluxPipeline refuses more T5 tokens
# Loading reads the weights, then hashes them for the images' "Model hash"; a file rewritten meanwhile (a quantize
# run writing it) is loaded again, at most this many times in all.
LOAD_TRIES = 3


class InvalidOutput(UserError):
    """The denoiser produced NaN or infinite latents (an extreme LoRA, a broken model): the image would be
    black, so the job stops instead of saving it."""


@dataclass
class ModelInfo:
    name: str
    path: Path
    kind: str
    architecture: str
    precision: str
    size_bytes: int
    est_vram_bytes: int | None  # the memory plan's GPU peak (``memory_policy``); None without a GPU
    execution_path: str  # the whole text: the path, why no fused kernel runs it, notes (as in the PNG metadata)
    execution_summary: str  # the path alone, "<backend> on <device>" (gpu.runtime.dispatch.ExecutionPath)
    defaults: dict[str, Any]
    memory_policy: Any = None  # gpu.runtime.memory_policy.MemoryPolicy (a prediction until loaded)
    est_ram_bytes: int | None = None  # without a GPU: the system memory the plan needs (None: unknown, or a GPU)
    takes_guidance: bool = True  # guidance is an input of its transformer (``model_takes_guidance``)
    # The linears a LoRA may change, by component then by each name a file may give them, from the files' headers
    # (``gpu.lora.layer_files``): what the app's LoRA panel judges its LoRAs against (``gpu.lora.fit``); a component
    # whose layers are not known is left out
    lora_layers: dict[str, dict[str, Layer]] = field(default_factory=dict)


class GenerationService:
    def __init__(
        self, library: ModelLibrary | None = None, device: torch.device | None = None, fuse: str | None = None
    ) -> None:
        load_model_libraries()  # before this thread's first use of them, whatever other threads do: see the module
        self.library = library or ModelLibrary()
        self.device = device
        self.fuse = fuse_mode(fuse)  # gpu.generation.fusion: fused FLUX blocks when no LoRA is active
        self.loaded: LoadedPipeline | None = None
        # (model path, base asked for, the FilesStamp of the files it was read from, heads included: ``loaded_stamp``,
        # with its VAE and text encoders) of the loaded pipeline: what a job's load and ``is_loaded`` hold the model
        # asked for to
        self._loaded_key: tuple[str, str | None, FilesStamp] | None = None
        # Measured seconds per denoising step, per (model path, width, height, LoRA set as ((name, rank), ...)):
        # what the LoRA cost report compares against the same model and size without LoRAs.
        self.step_seconds: dict[tuple, list[float]] = {}
        self._meters: dict[tuple[str, int], PromptMeter] = {}  # per (tokenizer's pipeline folder, token limit)

    # -- models ------------------------------------------------------------------------------------
    def describe(
        self, model: str, base: str | None = None, width: int | None = None, height: int | None = None
    ) -> ModelInfo:
        """Facts about a model without loading it (execution path and memory plan are predictions until loaded;
        ``base``: an SVDQ file's base pipeline, as ``generate --base`` names it). Its prompt meter is
        ``prompt_meter``'s: the first one imports transformers and reads a tokenizer (~3 s here). ``width`` and
        ``height``: a job's image size, which a CPU plan's working memory is for (None: the model's own); a GPU plan
        is for the model's own size, the one its placement is chosen for when the model loads."""
        entry = self.library.resolve(model)
        facts = entry.facts
        assert facts is not None
        own_width, own_height = default_size(facts)
        size = (own_width if width is None else width, own_height if height is None else height)
        with one_read_each():  # the SVDQ file's metadata was read five times here
            guided = model_takes_guidance(facts)
            if self._holds(entry.path, base, any_base=True):
                assert self.loaded is not None
                path = execution_path(self.loaded)
                policy = self.loaded.policy
                if policy is not None and policy.device == "cpu" and size != (own_width, own_height):
                    policy = policy_for_pipeline(self.loaded.pipe, self.loaded.device, size)
            else:
                path = predicted_path(facts, self.device)
                policy = predicted_policy(facts, self.library, self.device, base, size)
            layers = file_layers(facts, base_folder(facts, self.library, base))
        on_gpu = policy is not None and policy.device == "cuda"
        need = policy.peak_estimate_bytes if policy is not None else None
        return ModelInfo(
            entry.name, entry.path, facts.kind, facts.architecture, facts.precision, facts.size_bytes,
            need if on_gpu else None, str(path), path.summary, dict(facts.defaults), policy,
            None if on_gpu else need, guided, layers,
        )  # fmt: skip

    def _holds(self, path: Path, base: str | None, any_base: bool = False) -> bool:
        """Whether the loaded pipeline is the model at ``path``'s with ``base`` (``any_base``: with whatever base),
        read from its files as they are now (``same_files``: rewritten, replaced or copied over is another
        model), and, run with a stand-in base, while the base it records is still not here (``recorded_base_here``:
        the user added it since, which it then loads with)."""
        key = self._loaded_key
        if self.loaded is None or key is None or key[0] != str(path) or not (any_base or key[1] == base):
            return False
        now = loaded_stamp(path, self.loaded.base_path)
        if not same_files(key[2], now):
            return False
        if self.loaded.base_notes and key[1] is None:  # a stand-in base (or another revision), said in its notes
            here = recorded_base_here(self.loaded.entry.facts, self.library)
            if here is not None and here != self.loaded.base_path:
                return False  # the model's own base has come since
        if now.nodes != key[2].nodes:  # inodes numbered anew, the same contents: not read again while they stay
            self._loaded_key = (key[0], key[1], FilesStamp(now.files, now.nodes, key[2].heads))
        return True

    def is_loaded(self, model: str, base: str | None = None) -> bool:
        """Whether ``load(model, base)`` would find the model loaded already (its files unchanged since).

        Asked before every job (the app says "Loading" when not): the name is looked up as the job's ``resolve``
        looks it up, without every model of the library inspected (a header read each), and the path it names
        now is held to the load's key (path, base, ``FilesStamp``) as the job's ``_ensure_loaded`` holds it, so a
        library name given to another file since (library.json edited, or removed and another added under it) is
        not answered from the file loaded under it before."""
        if self.loaded is None:
            return False
        return self._holds(self.library.path_of(model), base)

    def prompt_meter(self, entry: ModelEntry | str) -> PromptMeter | None:
        """The ``PromptMeter`` of a model (its T5 tokenizer and ``max_sequence_length``; an SVDQ file's tokenizer
        is its base pipeline's), loaded once per pipeline folder. None when the limit or the tokenizer cannot be
        read: generating says why. A tokenizer of its own, never the loaded pipeline's: the app measures on its
        GUI thread while jobs encode here, and one Rust tokenizer used from two threads at once raises.
        ``entry``: a library entry, or a library name or path."""
        if isinstance(entry, str):
            entry = self.library.resolve(entry)
        try:
            limit = model_sequence_length(entry)
        except UserError:
            return None
        folder = base_folder(entry.facts, self.library)
        if folder is None:
            return None
        key = (str(folder), limit)
        if key not in self._meters:  # the libraries are quiet since __init__ (load_model_libraries)
            try:
                self._meters[key] = PromptMeter.from_pipeline(folder, limit)
            except Exception as err:  # noqa: BLE001 - tokenizers raises bare Exception; the meter is optional
                # A damaged tokenizer must not stop the model from being described (and selected): the counter is
                # left out, and generating names the problem when the pipeline loads.
                log.warning("cannot read the T5 tokenizer of %s: %s", folder, err)
                return None
        return self._meters[key]

    def load(self, model: str, base: str | None = None) -> ModelInfo:
        """The model loaded (``base``: an SVDQ file's base pipeline), unless it is already, from its files as
        they are now: a file rewritten or replaced since it was loaded (``quantize --overwrite`` while the app
        runs) is loaded again, and its "Model hash" hashed again."""
        entry = self.library.resolve(model)
        self._ensure_loaded(entry, base)
        return self.describe(str(entry.path))

    def _ensure_loaded(self, entry: ModelEntry, base: str | None) -> None:
        """``entry`` loaded with ``base``, unless it is already with its files unchanged."""
        if not self._holds(entry.path, base):
            self.unload()
            self.loaded, self._loaded_key = self._load_anew(entry, base)

    def _load_anew(self, entry: ModelEntry, base: str | None) -> tuple[LoadedPipeline, tuple]:
        """(the pipeline, its key as ``_loaded_key`` holds it): loaded and its weights hashed with the files unchanged
        throughout, so the hash the images carry is of the weights that made them. The files are those stamped
        before the load read them (``LoadedPipeline.read_from``: an SVDQ file's base pipeline's VAE and text
        encoders too), heads included, which tell renumbered inodes later."""
        for _ in range(LOAD_TRIES):
            loaded = self._read_pipeline(entry, base)
            loaded.model_hash = model_hash(entry.path)
            if same_files(loaded.read_from, loaded_stamp(entry.path, loaded.base_path)):
                return loaded, (str(entry.path), base, loaded.read_from)
            log.warning("%s changed while it was loaded: loading it again", entry.path)
            del loaded  # part old, part new, maybe: its memory is needed for the next try
            gc.collect()  # diffusers' hooks and the transformer hold each other: only a collection frees them
        raise ModelLoadError(f"{entry.name}: its weights kept changing while they were read ({entry.path})",
                             "wait until the program writing them (a quantize run?) is done, then try again")

    def _read_pipeline(self, entry: ModelEntry, base: str | None) -> LoadedPipeline:
        """``load_pipeline``, with running out of memory while placing the model said in numbers (OutOfMemory)."""
        ram = False
        try:
            return load_pipeline(entry, self.library, self.device, base)
        except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError, CUDA's own, the CPU allocator's
            ram = ram_ran_out(err)  # raised below, outside this handler: its traceback holds the parts placed so far
            if not (ram or gpu_ran_out(err)):
                raise
        gc.collect()  # the parts placed on the GPU before it ran out, held in reference cycles of the loaders
        device = self.device or default_device()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        with one_read_each():
            sizes, policy = predicted_plan(entry.facts, self.library, device, base)
        if ram:  # the plan's peak is the device's: for the RAM, how much it has is what is said
            raise load_out_of_memory(entry.name, None, torch.device("cpu"), sizes.weight_bits)
        raise load_out_of_memory(entry.name, policy.peak_estimate_bytes, device, sizes.weight_bits)

    def unload(self) -> None:
        """Drops the loaded pipeline and frees its memory now, before whatever comes next is loaded."""
        if self.loaded is not None:
            self.loaded = None
            self._loaded_key = None
            # diffusers' HookRegistry and the transformer hold each other: dropped, the pipeline is freed only by a
            # collection, and a model loaded meanwhile ran out of memory (34 GiB asked with 50 GiB free)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # -- generation --------------------------------------------------------------------------------
    def resolve_settings(self, request: GenerationRequest, entry: ModelEntry) -> dict[str, Any]:
        """The request with the model's defaults filled in, validated; raises BadRequestError."""
        d = entry.facts.defaults if entry.facts else {}
        if request.base and entry.kind != "svdq":
            raise BadRequestError(
                f"a base pipeline applies to SVDQ files only; {entry.name} is a complete pipeline",
                "leave out --base, or use it with a quantized .safetensors file",
            )

        def pick(name: str, asked: Any, default: Any, cast: type) -> Any:
            # A value the user asked for, else the model's default (which a hand-edited model folder can break).
            value, source = (asked, "") if asked is not None else (d.get(name, default), f" (model {entry.name})")
            try:
                return cast(value)
            except (TypeError, ValueError, OverflowError):
                raise BadRequestError(f"{name} {value!r}{source} is not a number",
                                      "" if asked is not None else where_to_correct(entry)) from None

        def refuse(name: str, problem: str) -> BadRequestError:
            # A value out of range: one the model's defaults gave is the model's to correct, not the user's typing.
            if getattr(request, name) is not None:
                return BadRequestError(f"{name} {s[name]} is not possible: {problem}")
            return BadRequestError(f"{name} {s[name]} (model {entry.name}) is not possible: {problem}",
                                   where_to_correct(entry))

        for label, text in (("prompt", request.prompt), ("negative prompt", request.negative_prompt)):
            check_text(label, text)
        s = {
            "prompt": request.prompt,
            "negative_prompt": used_negative_prompt(request.negative_prompt),
            "seed": pick("seed", request.seed, 0, int),
            "steps": pick("steps", request.steps, 28, int),
            "guidance": pick("guidance", request.guidance, 3.5, float),
            "width": pick("width", request.width, 1024, int),
            "height": pick("height", request.height, 1024, int),
            "max_sequence_length": model_sequence_length(entry),
        }
        for side in ("width", "height"):
            if s[side] % 16 or not 64 <= s[side] <= MAX_SIDE:
                raise refuse(side, f"use a multiple of 16 between 64 and {MAX_SIDE}")
        if not 1 <= s["steps"] <= 500:
            raise refuse("steps", "use 1 to 500")
        if not GUIDANCE_MIN <= s["guidance"] <= GUIDANCE_MAX:  # NaN too
            raise refuse("guidance", f"use {GUIDANCE_MIN:g} to {GUIDANCE_MAX:g}")
        check_batch_count(request.batch_count)
        if not 0 <= s["seed"] <= SEED_MAX:
            raise refuse("seed", "use 0 to 2^63-1")
        if s["seed"] > largest_first_seed(request.batch_count):  # a batch uses seeds S, S+1, ...
            raise BadRequestError(
                f"seed {s['seed']} with {request.batch_count} images runs past 2^63-1",
                f"use a seed up to {largest_first_seed(request.batch_count)}",
            )
        return s

    def generate(
        self,
        request: GenerationRequest,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        on_image: Callable[[GeneratedImage], None] | None = None,
        preview_every: int = PREVIEW_EVERY,
    ) -> list[GeneratedImage]:
        """The request's images, in batch order. ``on_image`` gets each one as soon as it is done (the command
        line saves it then: a batch stopped by Ctrl-C or a later error keeps the images already made).
        ``on_progress`` gets each step, with a latent preview every ``preview_every`` steps (0: none), but at the
        last step of an image, which is decoded next."""
        entry = self.library.resolve(request.model)
        settings = self.resolve_settings(request, entry)
        if request.loras and not self._holds(entry.path, request.base):  # loaded: the manager judges the model
            from gpu.lora.manager import check_fit_before_load

            check_fit_before_load(request.loras, file_layers(entry.facts, base_folder(entry.facts, self.library,
                                                                                      request.base)))  # fmt: skip
        self._ensure_loaded(entry, request.base)  # not load(): it resolves and describes again
        loaded = self.loaded
        assert loaded is not None
        loras = self.apply_loras(loaded, request.loras)
        notes = list(loaded.base_notes)
        guided = takes_guidance(loaded.pipe)
        if settings["guidance"] < 1 and not guided:
            # Classic CFG runs only above 1 (diffusers' true_cfg_scale): 0 and 0.5 made the guidance-1 image while
            # the PNG said 0.5, and those settings made another image on a model where guidance is an input.
            notes.append(f"guidance {settings['guidance']:g} is the same as 1 on {entry.name}, which guides away from "
                         "the negative prompt only above 1: the image is made, and saved, with guidance 1")
            settings["guidance"] = 1.0
        elif settings["negative_prompt"] and not negative_prompt_used(guided, settings["guidance"]):
            # the PNG and the history keep the negative prompt (a reuse makes the same image), which did nothing here
            notes.append(unused_negative_note(entry.name, settings["guidance"]))
        common = {
            "model": entry.name,
            "model_hash": loaded.model_hash,  # of the weights loaded, hashed as they were read
            "sampler": SAMPLER_NAME,
            "precision": entry.facts.precision if entry.facts else "",
            "execution_path": str(execution_path(loaded)),
            "memory_policy": loaded.policy.name if loaded.policy is not None else "",
            "version": f"{APP_NAME}-{__version__}",
        }
        if entry.kind == "svdq":  # its text encoders, VAE and scheduler: another base gives another image
            # its name only, as for LoRAs (a PNG is shared): a Hugging Face cache snapshot's is its repository's
            common["base"] = model_name(loaded.base_path)
        if loras:
            from gpu.lora import lora_hashes

            common["loras"] = lora_hashes(loras)  # A1111 "Lora hashes"
            common["lora_list"] = [a.describe() for a in loras]
        # A file name that is not UTF-8 (Linux) is text no PNG chunk or database takes: escaped, so the image is saved
        common = encodable(common)
        results = []
        for i in range(request.batch_count):
            s = {**settings, **common, "seed": settings["seed"] + i}
            started = time.perf_counter()
            ram = gpu = False
            try:
                image, lengths = self._run_one(loaded, s, i, request.batch_count, on_progress, should_cancel,
                                              preview_every)
            except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError, CUDA's own, the CPU allocator's
                ram, gpu = ram_ran_out(err), gpu_ran_out(err)
                if not (ram or gpu):
                    raise
            if ram or gpu:  # said here, outside the handler: its traceback holds the pipeline's frames and tensors
                bits = transformer_weight_bits(loaded.pipe.transformer)
                del loaded  # unload frees the pipeline only when nothing here holds it
                self.unload()
                said = "the GPU ran out of memory" if gpu else "the computer ran out of memory (RAM)"
                others = "other programs that use the GPU" if gpu else "other programs"
                raise OutOfMemory(f"{said} at {s['width']}x{s['height']}",
                                  hint=f"try {try_instead(bits)}, or close {others}")
            s["duration_s"] = round(time.perf_counter() - started, 3)
            lora_set = tuple((a.file.name, a.file.rank) for a in loras)
            where = (str(entry.path), s["width"], s["height"])
            cost = self.record_step_time(where, lora_set, s["duration_s"] / s["steps"])
            if cost is not None:
                s["lora_overhead_pct"] = cost
            s["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            s.pop("max_sequence_length", None)
            results.append(GeneratedImage(image, s, extras={"prompt_lengths": lengths, "notes": notes}))
            if on_image is not None:
                on_image(results[-1])
        return results

    def record_step_time(self, key: tuple, lora_set: tuple, seconds_per_step: float) -> float | None:
        """Records a measured step time; with LoRAs active, returns their overhead in percent against the
        median step time of the same model and size without LoRAs (None until such a baseline exists)."""
        self.step_seconds.setdefault((*key, lora_set), []).append(seconds_per_step)
        baseline = self.step_seconds.get((*key, ()))
        if not lora_set or not baseline:
            return None
        return round(100.0 * (seconds_per_step / statistics.median(baseline) - 1.0), 1)

    def apply_loras(self, loaded: LoadedPipeline, loras: list[LoraRequest] | None) -> list:
        """Make the loaded transformer (and its text encoders, for files with a CLIP or T5 part) carry exactly
        these LoRAs, each (file, strength) or (file, strength, strength of its CLIP/T5 parts) (``gpu.lora``; a
        no-op when unchanged, and when none were ever asked for); a bad file raises ``LoraError`` and leaves the
        model as it was, a set that fails half-way (out of memory) leaves it without LoRAs. With or without LoRAs
        the transformer runs fused where ``gpu.generation.fusion`` allows it, else unfused; the memory plan is
        chosen again whenever the LoRAs changed (``memory.replan``)."""
        transformer = loaded.pipe.transformer
        kind = loaded.entry.facts.kind if loaded.entry.facts else ""
        wanted = list(loras or [])
        active, changed = [], False
        try:
            if wanted or "_nibble_lora_manager" in transformer.__dict__:
                from gpu.lora import manager_for

                # a file's CLIP/T5 part goes to the pipeline's text encoders (with_prompt_embeds keys its cache on it)
                manager = manager_for(transformer, {n: getattr(loaded.pipe, n, None) for n in TEXT_ENCODERS})
                if not manager.is_applied(wanted):  # reads the files: a missing or broken one raises here
                    # LoRAs target the unmerged layer names: split the fused model and apply; the finally merges
                    # again (what fits the kernels' rank limit), also when a LoRA does not fit the model and the
                    # previous set stays on.
                    sync_fusion(transformer, False)
                    changed = True  # also when set fails half-way: it leaves the model without LoRAs
                    manager.set(wanted)
                active = list(manager.active)
        finally:
            fuse_if_allowed(transformer, loaded.device, kind, self.fuse)
            if changed:  # the plan counts the LoRAs' branches and the originals kept for removal
                try:
                    replan(loaded)
                except Exception:  # never hide the error in flight, nor fail a job over the plan's text
                    log.exception("choosing the memory plan again failed")
        return active

    def _run_one(
        self,
        loaded: LoadedPipeline,
        s: dict[str, Any],
        index: int,
        count: int,
        on_progress: Callable[[ProgressEvent], None] | None,
        should_cancel: Callable[[], bool] | None,
        preview_every: int,
    ) -> tuple[Image.Image, dict[str, PromptLength]]:
        """Image ``index`` of ``count`` with the settings ``s``, and how much of its prompts the T5 tokenizer kept."""
        pipe = loaded.pipe
        started = time.perf_counter()
        total = s["steps"]

        def on_step_end(
            pipeline: DiffusionPipeline, step: int, timestep: torch.Tensor, tensors: dict[str, torch.Tensor]
        ) -> dict[str, torch.Tensor]:
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled()
            if not bool(torch.isfinite(tensors["latents"]).all()):  # one reduction per step: cheap
                raise invalid_output(s, step + 1)
            if on_progress is not None:
                done = step + 1
                elapsed = time.perf_counter() - started
                preview = None
                if preview_every > 0 and done % preview_every == 0 and done < total:
                    preview = latent_preview(tensors["latents"], s["height"], s["width"], pipeline)
                eta = elapsed / done * (total - done)
                on_progress(ProgressEvent(index, count, done, total, elapsed, eta, preview))
            return {}

        kwargs: dict[str, Any] = {
            "prompt": s["prompt"],
            "num_inference_steps": total,
            "width": s["width"],
            "height": s["height"],
            "generator": torch.Generator("cpu").manual_seed(s["seed"]),
            "max_sequence_length": s["max_sequence_length"],
            "callback_on_step_end": on_step_end,
        }
        if takes_guidance(pipe):  # a negative prompt then needs true CFG on top
            kwargs["guidance_scale"] = s["guidance"]
            if s["negative_prompt"]:
                kwargs.update(negative_prompt=s["negative_prompt"], true_cfg_scale=1.5)
        else:
            # Models trained with caption dropout use classic classifier-free guidance.
            kwargs.update(negative_prompt=s["negative_prompt"] or "", true_cfg_scale=s["guidance"])
        if should_cancel is not None and should_cancel():
            raise GenerationCancelled()
        from gpu.generation.memory import encoders_detached, with_prompt_embeds

        with torch.inference_mode():
            # Prompts are encoded where the memory policy puts the text encoders; denoising and decoding then
            # run from the embeddings with the encoders detached (gpu.generation.memory).
            kwargs = with_prompt_embeds(loaded, kwargs)
            with encoders_detached(pipe):
                out = pipe(**kwargs)
        return out.images[0], measure_prompts(pipe, s, "negative_prompt_embeds" in kwargs)


def takes_guidance(pipe: Any) -> bool:
    """Whether the pipeline's transformer takes guidance as an input (a guidance-distilled model, FLUX.1-dev's kind),
    where any guidance is real; else guidance is classic classifier-free guidance against the negative prompt, which
    runs only above 1 (models trained with caption dropout, the demo model)."""
    return bool(getattr(pipe.transformer.config, "guidance_embeds", False))


def model_sequence_length(entry: ModelEntry) -> int:
    """The T5 tokens a model reads (``max_sequence_length``: its nibble.json's, else FLUX.1's 512); a value that
    is no number or out of range raises BadRequestError."""
    value = (entry.facts.defaults if entry.facts else {}).get("max_sequence_length", MAX_SEQUENCE_LENGTH)
    try:
        length = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequestError(f"max_sequence_length {value!r} (model {entry.name}) is not a number",
                              where_to_correct(entry)) from None
    if not 1 <= length <= MAX_SEQUENCE_LENGTH:  # only a model's nibble.json sets it
        raise BadRequestError(
            f"max_sequence_length {length} (model {entry.name}) is not possible: use 1 to {MAX_SEQUENCE_LENGTH}",
            where_to_correct(entry),
        )
    return length


def where_to_correct(entry: ModelEntry) -> str:
    """The hint for a bad default of a model: its folder's nibble.json, where they are written; "" for an SVDQ file,
    whose defaults are in the file's own metadata."""
    return f"correct it in {entry.path / 'nibble.json'}" if entry.path.is_dir() else ""


def measure_prompts(pipe: Any, settings: dict[str, Any], negative_used: bool) -> dict[str, PromptLength]:
    """How much of the prompt (and of the negative prompt, when the job used it) the pipeline's T5 tokenizer
    kept, keyed 'prompt' and 'negative prompt'; {} for a pipeline without one."""
    tokenizer = getattr(pipe, "tokenizer_2", None)
    if tokenizer is None:
        return {}
    meter = PromptMeter(tokenizer, settings["max_sequence_length"])
    texts = {"prompt": settings["prompt"]}
    if negative_used:
        texts["negative prompt"] = settings["negative_prompt"]
    return {label: meter(text) for label, text in texts.items()}


def check_text(label: str, text: Any) -> None:
    """A prompt must be text the tokenizers and the PNG can hold. A terminal that is not UTF-8 hands Python
    its bytes as lone surrogates (U+DC80-U+DCFF), which the tokenizers reject with a TypeError."""
    if not isinstance(text, str):
        raise BadRequestError(f"the {label} must be text, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        what = f"the byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"{ascii(bad)}"
        raise BadRequestError(
            f"the {label} is not valid text: {what} at character {err.start + 1} is not UTF-8",
            "set the terminal to UTF-8, or retype the text",
        ) from None


def used_negative_prompt(negative_prompt: str) -> str:
    """The negative prompt as the job uses it: one that is only white space (a stray newline left in the box, the
    CLI's ``--negative " "``) is none. Kept, it ran true CFG on guidance-distilled models (a second transformer
    pass per step, another image) and went into the PNG, while the app's history stores it stripped to "", so the
    image made again from there differed; for a blank one the engine, the metadata and the history now agree.
    Text with words in it is kept as given (its spaces are the user's), though the history stores it stripped."""
    return negative_prompt if negative_prompt.strip() else ""


def invalid_output(settings: dict[str, Any], step: int) -> InvalidOutput:
    """The error for NaN/inf latents at ``step``, naming the job's LoRAs, the likeliest cause."""
    loras = [f"{a['name']} ({strength_words(a)})" for a in settings.get("lora_list", [])]
    if loras:
        return InvalidOutput(
            f"the image became invalid (NaN or infinite values) at step {step} with LoRA {', '.join(loras)}",
            "the LoRA's weights are out of range for this model: try a lower strength or leave it out",
        )
    return InvalidOutput(
        f"the image became invalid (NaN or infinite values) at step {step} with model {settings.get('model')}",
        "the model file may be damaged: re-download or re-quantize it",
    )


def save_image(result: GeneratedImage, path: Path | str) -> Path:
    from gpu.generation.png_metadata import write_png

    result.path = write_png(path, result.image, result.settings)
    return result.path


def predicted_path(facts: Any, device: torch.device | None) -> ExecutionPath:
    """The path a model will take on ``device`` (default: the one it would load on), before loading: for an SVDQ
    file, that of a layer of the kind its metadata lists (no tensor data read). ``facts``: ``ModelFacts``."""
    from gpu.generation.pipeline_loader import plain_path, runtime_dtype

    device = device or default_device()
    if facts.kind != "svdq":
        return plain_path(runtime_dtype(device), device)
    from gpu.checkpoint.skeleton import quantized_layer_dtype
    from gpu.runtime.dispatch import predicted_backend

    meta = checkpoint_meta(facts.path)
    return predicted_backend(device, meta.layers, quantized_layer_dtype(meta.torch_dtype, runtime_dtype(device)))


def predicted_policy(
    facts: Any, library: ModelLibrary, device: torch.device | None, base: str | None = None,
    size: tuple[int, int] | None = None,
) -> Any:
    """The memory policy a model will get when loaded on ``device`` (``predicted_plan``'s)."""
    return predicted_plan(facts, library, device, base, size)[1]


def predicted_plan(
    facts: Any, library: ModelLibrary, device: torch.device | None, base: str | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[ModelSizes, MemoryPolicy]:
    """(the sizes, the memory policy) a model will get when loaded on ``device``, from file headers (no weights
    read): on a GPU weighed against its memory, on the CPU against the RAM, at the run-time dtype there (32 bits on
    the CPU), for the model's own image size (on the CPU ``size``, (width, height), where given: a job's). Never
    raises over a file that cannot be read: what cannot be read is left out, and loading names it. An SVDQ file
    whose base pipeline cannot be used is planned with FLUX.1-dev's text encoders and VAE, and the plan says so."""
    from gpu.generation.memory import predicted_sizes
    from gpu.generation.pipeline_loader import resolve_base, runtime_dtype
    from gpu.runtime.memory_policy import choose_policy, detect_total_vram

    device = device or default_device()
    total = detect_total_vram(device)
    folder, missing = facts.path, ""
    if facts.kind == "svdq":
        try:
            folder = resolve_base(facts, library, base)
        except NoBase as err:
            folder, missing = None, err.problem
        except UserError:  # incomplete or damaged: loading says what is wrong with it
            folder, missing = None, "cannot be used"
    sizes = predicted_sizes(facts, folder, runtime_dtype(device).itemsize)
    if total is None:
        from gpu.system_info import installed_ram_bytes

        policy = choose_policy(None, sizes, installed_ram_bytes(), size or default_size(facts))
    else:
        policy = choose_policy(total, sizes, image_size=default_size(facts))
    if missing:  # FLUX.1-dev's encoder sizes are no numbers of this model's: said as a stand-in
        policy = replace(policy, description=f"{policy.description} Its base pipeline (text encoders, VAE) "
                         f"{missing}: FLUX.1-dev's are counted in their place.")  # fmt: skip
    return sizes, policy


def load_out_of_memory(name: str, need: int | None, device: torch.device, bits: int) -> OutOfMemory:
    """The error for model ``name`` (``bits``: its weights', ``ModelSizes.weight_bits``) running out of memory while it
    was placed on ``device``: what the plan says it needs against what is free there, and what to do."""
    from gpu.runtime.memory_policy import amount

    needs = f"{name} needs about {amount(need)}" if need else f"{name} needs more memory than is free"
    smaller = [] if bits <= 4 else ["use a 4-bit version of it (Quantize this model, or main.py quantize)"]
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return OutOfMemory(f"{needs} on the GPU; this GPU has {amount(free)} free of {amount(total)}",
                           "; ".join([*smaller, "close other programs that use the GPU"]))  # fmt: skip
    from gpu.system_info import installed_ram_bytes

    ram = installed_ram_bytes()
    has = f"this machine has {amount(ram)} of RAM" if ram else "this machine's RAM could not be read"
    return OutOfMemory(f"{needs} of system memory; {has}", "; ".join([*smaller, "close other programs"]))


def base_folder(facts: Any, library: ModelLibrary, base: str | None = None) -> Path | None:
    """The pipeline folder that holds a model's text encoders and tokenizers (an SVDQ file's base: ``base``, else
    the recorded one), or None when it is not found (loading the model says why). ``facts``: ``ModelFacts``."""
    from gpu.generation.pipeline_loader import resolve_base

    try:
        return resolve_base(facts, library, base) if facts.kind == "svdq" else facts.path
    except UserError:
        return None
