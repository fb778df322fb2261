"""The quantize wizard's source choice as observable state: a library pipeline, a pipeline folder, or a
single-file FLUX.1 checkpoint together with the diffusers pipeline ("base") whose text encoders, tokenizers
and scheduler calibrate it.

Everything here is torch-free and reads only small files (JSON configs, safetensors headers), so it runs on
the GUI thread the moment the user picks something: a file that is no FLUX.1 checkpoint, or a base that
cannot calibrate it, is named on the source page instead of failing a run minutes later. The one check that
needs torch (the engine's own reading of every tensor the transformer needs, ``check_requested``) runs on the
quantize worker's thread and comes back through ``engine_checked``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.engine_errors import classify
from app.observable import Prop
from gpu.bfl_layout import SingleFileFacts, inspect_single_file
from gpu.calibration_set import (
    BUILT_IN_PROMPTS,
    MAX_DEFAULT_CALIB_STEPS,
    OWN_PROMPTS,
    available_prompts,
    calibration_steps,
    model_steps,
    prompts_file,
)  # fmt: skip
from gpu.errors import ModelLoadError, UserError
from gpu.library import snapshot_repo_name
from gpu.model_files import check_defaults_readable, missing_model, model_path_there, pipeline_defaults
from gpu.output_names import windows_device_name
from gpu.paths import same_file
from gpu.pipeline_checks import (
    check_not_prequantized,
    check_pipeline_complete,
    check_text_to_image_pipeline,
    check_weight_components,
    pipeline_misfit,
)
from gpu.pipeline_config import transformer_config

# An output name is a file name in the models folder: long names break Windows' 260-character paths, and Linux
# allows 255 bytes per name (a character of Chinese takes 3), with the method, rank and a temporary suffix after it.
_MAX_STEM = 80
_MAX_STEM_BYTES = 160
# No source to choose: the library holds no pipeline (not listed yet, as the engine starts, or all removed).
NO_PIPELINE = ("No diffusers pipeline in your library yet: pick a FLUX.1 pipeline folder with Other folder…, or a "
               "single .safetensors file with Single file…")  # fmt: skip
# A folder or file picked earlier in the wizard that is gone when picked again from the list.
GONE_HINT = "it was moved, renamed or deleted since it was picked: pick it again where it is now"
# A library pipeline chosen as the source or base that left the library since (the Models panel's Remove): it stays
# chosen with this problem, so that Quantize on a later page does not run another model, or none.
NOT_IN_LIBRARY = ("{name} is no longer in the library (it was removed since it was chosen here): add it again in the "
                  "Models panel, or choose another {what}")  # fmt: skip
# A library pipeline chosen as the source or base whose name the library lists at another folder since (removed and
# added again from elsewhere): the name goes on to that folder, which this says, so that no other model is quantized
# unsaid.
RELISTED = ("{name} was added to the library again from another folder, {new} (it was {old} when chosen here): that "
            "folder is the {what} now. Choose another {what} if it is not the one you meant")  # fmt: skip


def output_stem(source: str, folder_path: Path | None = None, safe: Callable[[str], str] | None = None) -> str:
    """The name a quantized copy of ``source`` starts with: a file's stem or a folder's (or library model's)
    name, made safe for a file name (``safe``: by ``_safe``). A drive root or ``/`` has no name; the pipeline's own
    name is used then (``_name_or_path`` in its model_index.json, e.g. ``FLUX.1-dev``), else ``model``: an empty
    stem gave ``-svdquant-int4-r32.safetensors``, a hidden file on Linux. A Hugging Face cache snapshot is named by
    its repository, as the library names it: picked with "Other folder…" it was named after its commit, another name
    than the same folder's as a library model, so its stopped run, listed as resumed, started over."""
    safe = safe or _safe
    path = Path(source)
    raw = path.stem if path.suffix.lower() == ".safetensors" else (snapshot_repo_name(path) or path.name)
    stem = safe(raw)
    if not stem and folder_path is not None:
        stem = safe(_pipeline_name(folder_path))
    return stem or "model"


def earlier_output_stems(source: str, folder_path: Path | None = None) -> list[str]:
    """The names a quantized copy of ``source`` started with in versions before this one, where they differ from
    ``output_stem``'s: every character outside A-Z, 0-9, "_", "." and "-" was "_" ("Modèle" was "Mod_le", a name in
    Chinese "model"). A run they stopped is resumed under its name (``claim_output_path``'s ``earlier``): named anew,
    it was listed as resumed by these settings, and the run started over beside it."""
    before = output_stem(source, folder_path, _ascii_safe)
    return [] if before == output_stem(source, folder_path) else [before]


def _safe(name: str) -> str:
    # Letters, digits and their marks of every script are kept (a folder named in Chinese or Cyrillic was named
    # "model", the next one "model-...-2"; Devanagari's vowels are marks); separators, spaces and the characters
    # Windows refuses are not, and leading dots would hide the file. Composed first: a name from macOS holds "é" as
    # "e" and an accent.
    kept = "".join(c if c.isalnum() or c in "_.-" or unicodedata.category(c)[0] == "M" else "\0"
                   for c in unicodedata.normalize("NFC", name))  # fmt: skip
    stem = re.sub("\0+", "_", kept).strip("._-")[:_MAX_STEM]
    while len(stem.encode("utf-8")) > _MAX_STEM_BYTES:
        stem = stem[:-1]
    stem = stem.rstrip("._-")
    # "nul.x-svdquant-….safetensors" is the NUL device on Windows before 11, whatever follows the dot: on every
    # system, so that a models folder shared with Windows, and a run resumed there, keep one name
    head, dot, rest = stem.partition(".")
    return f"{head}_{dot}{rest}" if windows_device_name(head) else stem


def _ascii_safe(name: str) -> str:
    """``_safe`` as versions before this one wrote it (``earlier_output_stems``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")[:_MAX_STEM].rstrip("._-")


def _pipeline_name(folder: Path) -> str:
    try:
        index = json.loads((folder / "model_index.json").read_bytes())
    except (OSError, ValueError):
        return ""
    named = index.get("_name_or_path") if isinstance(index, dict) else None
    return named.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if isinstance(named, str) else ""


def _transformer_config(folder: Path) -> dict[str, Any] | None:
    try:
        return transformer_config(folder)
    except UserError:
        return None


def _variant(guidance_embeds: bool) -> str:
    return "FLUX.1-dev" if guidance_embeds else "FLUX.1-schnell"


def check_pipeline_folder(folder: Path) -> dict[str, Any]:
    """The transformer config of the diffusers FLUX.1 pipeline at ``folder``; ModelLoadError in plain words
    when it is none, or when a weight file is missing, damaged or a pickle (headers and sizes only; torch-free:
    ``inspect_model_path`` would import torch through the adapters)."""
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"{folder}: not a diffusers pipeline folder (no model_index.json)",
                             "pick the folder that holds model_index.json, transformer/, text_encoder/, …")  # fmt: skip
    check_text_to_image_pipeline(folder)  # an SDXL or FLUX.1 Fill folder is named as the library names it
    check_pipeline_complete(folder, f"model {folder.name or folder}")
    check_not_prequantized(folder)
    cfg = transformer_config(folder)
    if cfg.get("_class_name") != "FluxTransformer2DModel":
        raise ModelLoadError(f"{folder.name or folder}: a {cfg.get('_class_name', 'unknown')} pipeline, not FLUX.1",
                             "only FLUX.1 models can be quantized")  # fmt: skip
    # every component's weights, not the transformer's alone: a text encoder of only pytorch_model.bin (a pickle,
    # which the engine never loads) is named here, not when the run loads the pipeline
    check_weight_components(folder, folder.name or str(folder))
    return cfg


@dataclass(frozen=True)
class CalibrationSet:
    """What a run of the chosen source calibrates with (the engine's own reading, ``gpu.calibration_set``): whose
    prompts, how many there are (a run asking for more uses them all), and the steps of each trajectory by default
    (the model's own, at most ``MAX_DEFAULT_CALIB_STEPS``)."""

    prompts: str  # whose: OWN_PROMPTS or BUILT_IN_PROMPTS
    available: int
    default_steps: int
    model_steps: int
    STEPS_CAP = MAX_DEFAULT_CALIB_STEPS  # the most steps a run takes by default (the widgets never import gpu/)


def calibration_set(folder: Path) -> CalibrationSet:
    """The ``CalibrationSet`` of the pipeline ``folder`` (a source's, or a single file's base); ``UserError`` for
    what a run of it would stop on: a nibble.json that is damaged (read as none, it showed FLUX.1-dev's 28 steps and
    the built-in prompts), a prompts file that cannot be read or holds no prompt, steps that are no number."""
    check_defaults_readable(folder, f"model {folder.name or folder}")
    defaults = pipeline_defaults(folder)
    available = len(available_prompts(folder, defaults))
    own = prompts_file(folder, defaults)[1]
    return CalibrationSet(OWN_PROMPTS if own else BUILT_IN_PROMPTS, available,
                          calibration_steps(None, defaults, folder), model_steps(defaults, folder))  # fmt: skip


def no_comparison_reason(source: str | None, base: str | None) -> str:
    """Why a run of the single-file checkpoint ``source`` (None: no run yet) shows no 16-bit images beside the
    quantized ones: the app cannot run the file at 16 bits, and its ``base`` pipeline's transformer is another
    model."""
    name = Path(source).name if source is not None else "the source"
    return (f"No comparison with the 16-bit model: {name} is a single-file checkpoint, which the app cannot "
            f"run at 16 bits (it runs diffusers pipeline folders and quantized models). The base pipeline "
            f"{base} supplies only the text encoders; its own transformer is in general another model (the one "
            "a fine-tune started from), so its images would not show what quantizing changed. The images are "
            "the quantized model's own, on the comparison prompts.")  # fmt: skip


class QuantizeSource(QObject):
    """What the source page shows and whether the wizard may go on (``ready``)."""

    source_changed = Signal(str)
    is_file_changed = Signal(bool)
    needs_base_changed = Signal(bool)
    base_changed = Signal(str)
    description_changed = Signal(str)
    problem_changed = Signal(str)
    base_problem_changed = Signal(str)
    base_warning_changed = Signal(str)
    relisted_changed = Signal(str)
    checking_changed = Signal(bool)
    ready_changed = Signal(bool)
    calibration_changed = Signal(object)
    rank_limit_changed = Signal(int)
    check_requested = Signal(str)  # a single file's or a folder's path, for the engine's own check of its tensors
    bases_changed = Signal()

    source = Prop("")  # library name or path
    is_file = Prop(False)  # the source is a single file
    needs_base = Prop(False)  # ... and a FLUX.1 checkpoint, which a base pipeline calibrates
    base = Prop("")  # library name or folder of the base pipeline; "" when none is chosen
    description = Prop("")  # what the source is, in words
    problem = Prop("")  # why the source cannot be quantized; "" when it can
    base_problem = Prop("")  # why the base cannot calibrate the file; "" when it can (or none is needed)
    base_warning = Prop("")  # what a base that fits costs (made for the other of dev/schnell); never blocks
    relisted = Prop("")  # the chosen library source or base now names another folder (RELISTED); never blocks
    checking = Prop(False)  # the engine's check of a single file is under way (a folder's holds nothing)
    ready = Prop(False)
    calibration = Prop(None)  # CalibrationSet of the source (a single file's: its base's); None while not known
    rank_limit = Prop(0)  # the largest low-rank rank the source's layers take (``source_rank_limit``); 0: not known

    def __init__(self, entries: list[Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Library pipelines: (label, value, folder). Folders the user picks as a base are appended.
        self.bases: list[tuple[str, str, Path]] = []
        self._folders: dict[str, Path] = {}
        # Library names that left the library while the wizard was open, with the folder each named then
        self._removed: dict[str, Path] = {}
        # The chosen library source (a single file's base) and its folder when chosen, noted at the first list after
        # the choice (the list has not changed since): ``relisted`` compares with it, not with the last list
        self._chosen_at: tuple[str, Path | None] | None = None
        self.facts: SingleFileFacts | None = None
        self.picked: list[str] = []  # the folders and files picked as the source (``pick``), in the order picked
        self._picked_for: dict[str, str] = {}  # library pipelines picked by the path of their folder: that path
        # The calibration sets read since the last choice, by pipeline folder (``_calibration``): each choice reads
        # its pipeline's once, where the problem it names and the set shown read it two to five times
        self._calibration_read: dict[Path, CalibrationSet | UserError] = {}
        self.set_library(entries)
        for name in ("source", "base", "problem", "base_problem", "checking", "needs_base"):
            getattr(self, f"{name}_changed").connect(self._update_ready)
        for name in ("source", "base", "problem", "base_problem"):
            getattr(self, f"{name}_changed").connect(self._update_calibration)

    def set_library(self, entries: list[Any]) -> None:
        """The library's models are ``entries`` (read as the engine started, or a model added or removed since):
        its pipelines are the library sources and bases, the folders picked as a base kept after them. A single
        file's base is checked again: a pipeline that fits may have come. A source or base no longer listed stays
        chosen, and its problem says it left the library (another one chosen in its place, Quantize on a later page
        ran a model the user never chose, or none); listed again, it can be used again, and ``relisted`` says so when
        its name now stands for another folder (the name alone went on to it, and another model was quantized)."""
        pipelines = [(e.name, e.name, Path(e.path)) for e in entries if getattr(e, "kind", "") == "diffusers"]
        picked = [b for b in self.bases if b[1] not in self._folders]
        listed = {e.name for e in entries}
        chosen = self.base if self.is_file else self.source  # a library name, or a path that is no library entry
        self._calibration_read.clear()  # a new look at the library: its pipelines' sets are read again
        was = self._folders.get(chosen) or self._removed.get(chosen)
        if self._chosen_at is None or self._chosen_at[0] != chosen:
            self._chosen_at = (chosen, was)
        source_removed = self.source in self._removed
        self._removed = {name: folder for name, folder in (self._removed | self._folders).items() if name not in listed}
        self._folders = {e.name: Path(e.path) for e in entries}
        self.bases = pipelines + [b for b in picked if b[1] not in self._folders]
        self.bases_changed.emit()
        now = self._folders.get(chosen)
        changed = was is not None and now is not None and now != was
        if self.source and ((self.source in self._removed) != source_removed or (changed and not self.is_file)):
            self.choose(self.source)  # left the library, came back, or names another folder: checked anew
        elif self.needs_base:
            if self._base_folder(self.base) is None and self.base not in self._removed:  # none chosen yet
                self.base = self._preselected_base()
            self._check_base()
            if changed:
                self._update_calibration()  # the other folder's prompts and steps
        # Compared with the folder chosen: a name gone to B and back to A, the one chosen, was said to be "added
        # again from another folder, A (it was B)" and stopped Quantize again; unlisted, the problem says so alone.
        old = self._chosen_at[1]
        moved = old is not None and now is not None and now != old
        what = "base pipeline" if self.is_file else "source"
        self.relisted = RELISTED.format(name=chosen, new=now, old=old, what=what) if moved else ""
        self._follow_picked_folders()

    def _follow_picked_folders(self) -> None:
        """A folder picked by path is the library pipeline of that folder while the library lists it (picked, then
        added in the Models panel: it was listed twice), and the folder picked again once its entry left the library
        (the entry removed, the folder still there: the source the user picked by its path was "no longer in the
        library")."""
        for path in list(self.picked):
            if (name := self._library_name_of(path)) is not None:
                self.picked.remove(path)
                self._picked_for[name] = path
                if self.source == path:
                    self.choose(name)
        if self.source in self._removed and (path := self._picked_for.get(self.source)) and Path(path).is_dir():
            if path not in self.picked:
                self.picked.append(path)
            self.choose(path)

    def library_sources(self) -> list[str]:
        """The library's pipelines, by name: the sources it offers."""
        return [value for _label, value, _folder in self.bases if value in self._folders]

    def sources(self) -> list[tuple[str, str, str]]:
        """The sources offered, (label, value, where: its folder or file): the library's pipelines, then the folders
        and files picked. A picked one whose name another has is labelled with the folder it is in too: the
        library's demo and a copy picked elsewhere were listed as "demo" twice, nothing saying which was chosen."""
        library = [(name, name, str(self._folders[name])) for name in self.library_sources()]
        names = [label for label, _value, _where in library] + [Path(p).name or p for p in self.picked]
        picked = []
        for path in self.picked:
            name = Path(path).name or path
            label = f"{name} — {Path(path).parent}" if names.count(name) > 1 else name
            picked.append((label, path, path))
        return library + picked

    def pick(self, path: str) -> str:
        """A folder or file picked (Other folder…, Single file…) is offered among the ``sources`` from now on;
        returns the value it is offered as: a library pipeline's name when it is that pipeline's folder, a path
        picked before when it is that one (another spelling: a link, a trailing separator), else ``path``, offered
        from now on. Picked by path, the library's own folder was offered again, once per spelling. Choosing it is
        ``choose``'s."""
        if (name := self._library_name_of(path)) is not None:
            self._picked_for[name] = path  # picked again should the entry leave the library
            return name
        same = next((p for p in self.picked if p == path or same_file(p, path)), None)
        if same is None:
            self.picked.append(path)
        return same or path

    def _library_name_of(self, path: str) -> str | None:
        """The library pipeline whose folder ``path`` is, however it is spelled; None when none is."""
        return next((name for name in self.library_sources() if same_file(path, self._folders[name])), None)

    # -- the source ------------------------------------------------------------------------------------------
    def choose(self, value: str) -> None:
        """A library name, a pipeline folder or a single file became the source ("": none, the library holding
        no pipeline)."""
        self._calibration_read.clear()  # read again for this choice: it may be the same folder, changed since
        self._choose(value)
        self._update_rank_limit()

    def _choose(self, value: str) -> None:
        if value != self.source:
            self.relisted = ""  # said of the source chosen before, or of its base
            self._chosen_at = None  # its folder is noted at the next list (``set_library``)
        self.facts, self.checking = None, False
        path = Path(value)
        single = value not in self._folders and value not in self._removed and path.is_file()
        self.is_file = single
        self.needs_base = False
        self.source = value
        if single:
            self._choose_file(value)
            return
        self.base = ""
        self.base_problem = ""
        self.base_warning = ""
        if value in self._folders:  # a library entry: the library checked it when it was listed, not its prompts
            self.description, self.problem = "", self._calibration_problem(self._folders[value])
            return
        if value in self._removed:  # a library name, not a folder here: one of that name would be another model
            self.description, self.problem = "", NOT_IN_LIBRARY.format(name=value, what="source")
            return
        if not value:  # an empty path is the current folder, which was checked as the source
            self.description, self.problem = "", NO_PIPELINE
            return
        try:
            if not model_path_there(path):  # a file gone was taken for a folder without model_index.json
                raise missing_model(path, GONE_HINT)
            cfg = check_pipeline_folder(path)
        except UserError as err:
            self.description, self.problem = "", _words(err)
            return
        self.description = (f"Diffusers FLUX.1 pipeline folder, {cfg.get('num_layers', '?')} double and "
                            f"{cfg.get('num_single_layers', '?')} single blocks")  # fmt: skip
        self.problem = self._calibration_problem(path)
        if not self.problem:
            # Its tensors' shapes, as a single file's (the run names a wrong one before any work): said here when the
            # engine's look ends, without holding Next meanwhile, as a folder the library checked is not held
            self.check_requested.emit(value)

    def _choose_file(self, value: str) -> None:
        try:
            self.facts = inspect_single_file(value)
        except UserError as err:
            self.description, self.problem = "", _words(err)
            self.base, self.base_problem, self.base_warning = "", "", ""
            return
        self.description = self.facts.summary
        self.problem = ""
        self.needs_base = True
        self.base = self._preselected_base()
        self._check_base()
        self.checking = True  # Next waits for the engine's check of every tensor
        self.check_requested.emit(value)

    def engine_checked(self, path: str, message: str) -> None:
        """The engine's check of ``path`` ended: ``message`` says what is wrong with it, "" when nothing is."""
        if path != self.source:  # the user has picked something else since
            return
        if message:
            self.problem = message
        self.checking = False

    def recheck_file(self) -> None:
        """Raises the ``UserError`` a single-file source gives now (none for a pipeline): it may have been moved
        or replaced since it was picked, and the engine would then take it for a library name or folder and say
        something beside the point about --base."""
        if self.is_file:
            inspect_single_file(self.source)

    # -- the base pipeline -----------------------------------------------------------------------------------
    def add_base_folder(self, folder: str) -> str:
        """Offers ``folder`` as a base (chosen at once); returns its value, or "" with ``base_problem`` set
        when it is no FLUX.1 pipeline."""
        path = Path(folder)
        try:
            check_pipeline_folder(path)
        except UserError as err:
            self.base = ""
            self.base_problem = _words(err)
            self.base_warning = ""
            return ""
        if all(value != folder for _, value, _ in self.bases):
            self.bases.append((path.name or folder, folder, path))
            self.bases_changed.emit()
        self.choose_base(folder)
        return folder

    def choose_base(self, value: str) -> None:
        """``value`` (a library name or a folder picked; "": none) became the base of the single-file source."""
        if value != self.base:
            self.relisted = ""  # said of the base chosen before
            self._chosen_at = None
        self._calibration_read.clear()  # read again for this choice: it may be the same folder, changed since
        self.base = value
        self._check_base()

    def _base_folder(self, value: str) -> Path | None:
        return next((folder for _, v, folder in self.bases if v == value), None)

    def _fit(self, value: str) -> list[str] | None:
        """What the base at ``value`` lacks for the file (empty: it fits; ``pipeline_misfit``, the quantizer's and
        generation's check); None when none of its config files can be read."""
        folder = self._base_folder(value)
        if folder is None or self.facts is None:
            return None
        return pipeline_misfit(self.facts.config, folder)

    def _preselected_base(self) -> str:
        """The library pipeline most likely to be the file's own: one that fits, with the same guidance
        embedding (FLUX.1-dev has one, schnell none), whose name shares the file's dev/schnell word."""
        assert self.facts is not None
        stem = self.facts.path.stem.lower()

        def score(value: str, folder: Path) -> tuple[int, int]:
            cfg = _transformer_config(folder) or {}
            same_guidance = bool(cfg.get("guidance_embeds")) == self.facts.config["guidance_embeds"]
            same_word = any(w in stem and w in value.lower() for w in ("schnell", "dev"))
            return int(same_guidance), int(same_word)

        fitting = [(value, folder) for _, value, folder in self.bases if self._fit(value) == []]
        if not fitting:
            return ""
        return max(fitting, key=lambda vf: score(*vf))[0]  # max keeps the first of equals: library order

    def _check_base(self) -> None:
        self.base_warning = self._variant_warning()
        if not self.needs_base or self.facts is None:
            self.base_problem = ""
            return
        name = self.facts.path.name
        if not self.base:
            if any(self._fit(value) == [] for _, value, _ in self.bases):
                self.base_problem = (f"{name} holds only the transformer: choose the FLUX.1 pipeline it was made "
                                     "for, whose text encoders, tokenizers and scheduler calibrate it")  # fmt: skip
            else:  # nothing in the list would do: say where to look instead of offering misfits
                self.base_problem = (f"{name} holds only the transformer, and no pipeline in the library fits it "
                                     "(its text encoder widths or latent channels differ): pick the FLUX.1 "
                                     "pipeline it was made for with Other folder… (e.g. FLUX.1-dev)")  # fmt: skip
            return
        if self.base in self._removed:
            self.base_problem = NOT_IN_LIBRARY.format(name=self.base, what="base pipeline")
            return
        misfit = self._fit(self.base)
        if misfit is None:
            self.base_problem = (f"{self.base}: the config.json files of its text encoders, VAE and transformer are "
                                 "missing or unreadable")  # fmt: skip
        elif misfit:
            self.base_problem = (f"{name} does not fit {Path(self.base).name or self.base}: {', '.join(misfit)}. "
                                 "Choose the pipeline this checkpoint was made for (e.g. FLUX.1-dev)")  # fmt: skip
        else:
            self.base_problem = self._calibration_problem(self._base_folder(self.base))

    def _variant_warning(self) -> str:
        """A base that fits but belongs to the other variant (a FLUX.1-dev-style file, which has a guidance
        embedding, with a schnell-style pipeline, which has none, or the reverse). It calibrates all the same:
        the base supplies text encoders (dev's and schnell's are the same), tokenizers, the scheduler and the
        generation defaults, but the last two shape the calibration trajectories, which then are not the
        ones the file generates with. A poorer calibration, not a wrong one, so this warns and never blocks."""
        if not self.needs_base or self.facts is None or not self.base or self._fit(self.base) != []:
            return ""
        folder = self._base_folder(self.base)
        assert folder is not None  # _fit found its config
        base_guided = bool((_transformer_config(folder) or {}).get("guidance_embeds"))
        file_guided = bool(self.facts.config["guidance_embeds"])
        if base_guided == file_guided:
            return ""
        defaults = pipeline_defaults(folder)
        name, base = self.facts.path.name, Path(self.base).name or self.base
        embedding = "with a guidance embedding" if file_guided else "without a guidance embedding"
        return (f"{name} is a {_variant(file_guided)}-style model ({embedding}), but {base} is a "
                f"{_variant(base_guided)}-style pipeline. Its scheduler and generation settings "
                f"({defaults.get('steps')} steps, guidance {defaults.get('guidance')}) drive the calibration, so "
                f"{name} is calibrated on {_variant(base_guided)}-like trajectories, not on the ones it generates "
                f"with: it still quantizes, but the 4-bit copy may stay less close to the original, and it starts "
                f"with these settings in the app. Choose a {_variant(file_guided)} pipeline as the base if you "
                "have one")  # fmt: skip

    def _update_calibration(self, *_: Any) -> None:
        """The calibration set a run of the source as chosen uses, read from the pipeline that supplies it (what
        it would stop on there is the source's problem, or its base's: ``_calibration_problem``)."""
        folder = self._base_folder(self.base) if self.is_file else self._folders.get(self.source, Path(self.source))
        usable = self.source and folder is not None and not self.problem and not self.base_problem
        found = self._calibration(folder) if usable else None
        self.calibration = found if isinstance(found, CalibrationSet) else None  # a UserError: the problem says it

    def _update_rank_limit(self) -> None:
        """The largest rank a run of the source takes, from its transformer's config (a single file's: read from
        its shapes): the wizard's rank field goes no further, where the run refused a rank beyond it once started
        (256 on the demo's 256-wide layers)."""
        if self.is_file:
            config = self.facts.config if self.facts is not None else None
        else:
            folder = self._folders.get(self.source, Path(self.source)) if self.source else None
            config = _transformer_config(folder) if folder is not None and not self.problem else None
        if config is None:
            self.rank_limit = 0
            return
        from gpu.quantizer import source_rank_limit  # torch and diffusers: imported by the engine by now

        self.rank_limit = source_rank_limit(config) or 0

    def _calibration(self, folder: Path) -> CalibrationSet | UserError:
        """The ``calibration_set`` of the pipeline ``folder``, or the ``UserError`` a run would stop on there, read
        once per choice (``_calibration_read``)."""
        if folder not in self._calibration_read:
            try:
                self._calibration_read[folder] = calibration_set(folder)
            except UserError as err:
                self._calibration_read[folder] = err
        return self._calibration_read[folder]

    def _calibration_problem(self, folder: Path | None) -> str:
        """What a run would stop on in the calibration set of the pipeline ``folder`` (``calibration_set``: a damaged
        nibble.json, a prompts file that holds no prompt, ...), in words; "" when nothing. Named as the source or
        base is chosen: the page said it was ready, and the run failed once named and started."""
        found = self._calibration(folder) if folder is not None else None
        return _words(found) if isinstance(found, UserError) else ""

    def _update_ready(self, *_: Any) -> None:
        self.ready = bool(self.source) and not self.problem and not self.base_problem and not self.checking \
            and (not self.needs_base or bool(self.base))  # fmt: skip


def _words(err: UserError) -> str:
    return classify(err).text
