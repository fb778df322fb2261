"""Where the quantize wizard's runs write and what they keep: output names that never replace a model nor discard
an earlier run's finished blocks, what a stopped run keeps for a resume, the unfinished runs in the models folder
(listed, and deleted when asked), and the RAM budget's default for this machine. App-side (the wizard's widgets
do not call the engine); every decision about a parts folder is the engine's own (``gpu.streaming.resume``,
``gpu.streaming.parts_folder``, ``gpu.streaming.unfinished``)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from app.engine_errors import EngineError, classify
from app.wording import counted, human_bytes, sentence
from gpu.errors import OutputBusy, UserError
from gpu.output_lock import OutputClaim, claim_first, claim_first_free
from gpu.quantize_defaults import DEFAULT_RAM_BUDGET_GIB, OWN_FORMAT_METHODS, RANK_METHODS
from gpu.system_info import installed_ram_bytes

if TYPE_CHECKING:
    from app.background import Lookup
    from gpu.streaming.resume import ResumeKey
    from gpu.streaming.unfinished import UnfinishedRun

log = logging.getLogger(__name__)

# The wizard's widgets may not import gpu.system_info (tests/app/test_layering.py): they take it from here.
__all__ = [
    "RAM_SHARE",
    "Deletion",
    "Named",
    "claim_output_path",
    "default_ram_budget_gib",
    "delete_unfinished_run",
    "free_output_path",
    "installed_ram_bytes",
    "kept_note",
    "name_run_output",
    "not_deleted",
    "output_name",
    "saved_words",
    "running_output",
    "stopped_note",
    "unfinished_runs",
    "unfinished_summary",
]

# The share of the installed RAM the RAM budget defaults to: the rest is the desktop's, the app's and the
# generation model's (the engine keeps the activations in RAM when they fit the budget, else spills them to disk).
RAM_SHARE = 0.75

# The outputs of this process's quantize runs, from the moment the wizard hands a run to its worker. Their names are
# locked from the choice on (``claim_output_path``), which refuses a deletion as another run's; this set lets the
# refusal name the run as this window's.
_running: set[Path] = set()
_running_lock = threading.Lock()  # held by a deletion for all of it (GiBs: it may take a while)
_deleting: Path | None = None  # the parts folder being deleted (``delete_unfinished_run``), while it is


@contextmanager
def running_output(out_path: Path, on_wait: Callable[[Path], None] | None = None) -> Iterator[None]:
    """Marks ``out_path`` as the output of a run of this process for the block (its parts are not deleted
    meanwhile). Waits for a deletion in progress, which ``on_wait`` is told of first (the parts folder being
    deleted): the run then starts without those parts. One started from another wizard than the deletion (the
    one asked for it closed since) knew nothing of it, and stood silent meanwhile."""
    if not _running_lock.acquire(blocking=False):
        deleting = _deleting  # None: only another run's moment in the lock, no wait worth a word
        if deleting is not None and on_wait is not None:
            on_wait(deleting)
        _running_lock.acquire()
    try:
        _running.add(out_path)
    finally:
        _running_lock.release()
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(out_path)


def _streaming() -> ModuleType:
    """``gpu.streaming``, its modules used here imported when first needed (the engine imports torch), after
    ``gpu.quantizer``: imported first, the engine is a circular import (that package imports it), and so are the
    resume decision and the unfinished runs (they import ``gpu.quantizer.config``). The modules: ``run_inputs`` (the
    run's ``resume_key``), ``base_pipeline`` (an output the run would refuse as a model it reads), ``parts_folder``
    (the folder and what it keeps), ``resume`` (whether a run resumes from it), ``unfinished`` (the unfinished runs,
    listed and deleted) and ``stopped`` (what a stopped run left)."""
    import gpu.quantizer  # noqa: F401
    import gpu.streaming.base_pipeline
    import gpu.streaming.parts_folder
    import gpu.streaming.resume
    import gpu.streaming.run_inputs
    import gpu.streaming.stopped
    import gpu.streaming.unfinished

    return gpu.streaming


def resume_key(source: str, config: Any) -> ResumeKey | None:
    """The engine's resume key of a run of ``config`` (a QuantizeConfig) on ``source``; None when it cannot be
    known now: the source cannot be read, or reading it fails in any way (a config file holding ``"num_layers":
    "2"`` raised a TypeError on the GUI thread as the wizard started its run). The run itself then refuses the
    source, in the engine's words, or fails with its real error."""
    try:
        return _streaming().run_inputs.resume_key(source, config)
    except UserError:
        return None
    except Exception:  # noqa: BLE001 - never the GUI thread's end: the run reports it
        log.warning("the resume key of %s could not be computed", source, exc_info=True)
        return None


def claim_output_path(folder: Path, stem: str, source: str, config: Any, notes: list[str] | None = None,
                      earlier: Sequence[str] = ()) -> OutputClaim:  # fmt: skip
    """The name a run of ``config`` on ``source`` writes in ``folder``, claimed for that run (the engine's lock on
    it, ``gpu.output_lock.claim_first``, which the run holds and its caller releases): an interrupted run's name it
    resumes (``<stem>.safetensors`` or ``<stem>-N.safetensors`` whose ``.parts`` folder the engine would resume
    from: same settings, same source files, same calibration inputs, same quantizer version), else the first free
    one of ``<stem>.safetensors``, ``<stem>-2.safetensors``, …. A file already there is a model the user may be
    using (perhaps in the library), and the quantizer's final rename would replace it silently. A name with only a
    ``.parts`` folder the run would not resume from is taken too: the engine would delete its blocks (hours of
    work) to start over; ``notes`` gets why, for the log. Only a folder whose deletion loses nothing (no readable
    manifest, no block or samples file: ``discards_nothing``) leaves its name free. A name claimed by another run
    (another app's wizard, or a ``main.py quantize`` run, working or about to) is skipped, a resumable one too:
    chosen unclaimed, two wizards took one name before either run made its parts folder, and wrote one output. A
    wizard of this app waits for the run of the one it replaced to stop before it calls this (that run's name is
    the one it resumes). ``earlier``: the names (no suffix) earlier versions gave such a run, which it resumes too
    (``earlier_output_stems``). A name skipped for another run is said in ``notes`` too (``_busy_note``)."""
    streaming = _streaming()
    key = resume_key(source, config)
    stems = [name for s in (stem, *earlier) for name in _resumed_stems(s, config)]

    def busy(held: OutputBusy) -> None:
        note = _busy_note(held)
        if notes is not None and note not in notes:  # a stopped run's name it resumes, skipped twice
            notes.append(note)

    resumed = _claim_resumed_name(folder, stems, key, busy)
    if resumed is not None:
        return resumed

    def taken(path: Path) -> bool:
        if path.exists():
            return True
        parts = streaming.parts_folder.parts_dir(path)
        if streaming.resume.resumes_from(parts, key) is not False or streaming.parts_folder.discards_nothing(parts):
            return False  # no parts folder, one this run resumes, or one holding nothing to lose
        if notes is not None:
            notes.append(_taken_note(parts, key))
        return True

    return claim_first_free(folder / f"{stem}.safetensors", taken, "quantize run", busy)


def _busy_note(held: OutputBusy) -> str:
    """Why the run does not write into a name another run holds (``held``: its ``OutputBusy``, naming the name and
    the holder's process, a ``main.py quantize`` or another app's wizard), in words: passed over unsaid, the run
    wrote "-2", and two runs of one model worked at once on one GPU, nothing saying why."""
    return f"{sentence(str(held))[:-1]}: this run writes a name of its own."


def free_output_path(folder: Path, stem: str, source: str, config: Any, notes: list[str] | None = None,
                     earlier: Sequence[str] = ()) -> Path:  # fmt: skip
    """The name ``claim_output_path`` claims now, let go of at once: what a run would write, for a look; a run's
    own name is its claim's, which another chooser may take once let go of."""
    with claim_output_path(folder, stem, source, config, notes, earlier) as claim:
        return claim.target


def _settings_made_with(config: Any) -> tuple[str, str, int | None]:
    """The settings a model of ``config`` (a QuantizeConfig) is made with, as its name and the result page say them:
    (method, precision, rank); the precision "" for a method with a format of its own (NF4: its weights are NF4
    whatever the precision), the rank None but for the methods with a low-rank branch."""
    precision = "" if config.method in OWN_FORMAT_METHODS else config.precision
    return config.method, precision, config.rank if config.method in RANK_METHODS else None


def output_name(stem: str, config: Any) -> str:
    """The quantized file's name (no suffix) for ``config`` (a QuantizeConfig): method, precision and, for the
    methods with a low-rank branch, its rank (a round-to-nearest file named "-r32" had none). An NF4 file's name
    says no precision: its weights are NF4 whatever the precision, and "-nf4-int8" named the file "-nf4-int4" was,
    which a run of the one did not resume from the other's stopped run."""
    method, precision, rank = _settings_made_with(config)
    return f"{stem}-{method}" + (f"-{precision}" if precision else "") + (f"-r{rank}" if rank is not None else "")


def saved_words(path: Path, source: str, config: Any) -> str:
    """What a run of ``config`` on ``source`` made, in the result page's words: the model file ``path``, its size and
    folder, and what it is ("Saved demo-svdquant-int4-r8.safetensors (5.9 MiB) in FOLDER: demo quantized with
    svdquant, INT4, rank 8."). The page said "Saved to PATH" alone: neither the size nor what the file is."""
    method, precision, rank = _settings_made_with(config)
    made_with = ", ".join(w for w in (method, precision.upper(), "" if rank is None else f"rank {rank}") if w)
    try:
        size = f" ({human_bytes(path.stat().st_size)})"
    except OSError:  # moved away since: the library's add says so
        size = ""
    return f"Saved {path.name}{size} in {path.parent}: {Path(source).name or source} quantized with {made_with}."


@dataclass(frozen=True)
class Named:
    """A run's output name, chosen on a thread (``QuantizeWizard.start``), with what it was chosen for."""

    claim: OutputClaim  # the engine's lock on the name: the run's from the choice on
    notes: list[str]  # why names before it were not taken, for the log
    source: str
    config: Any
    compare_original: bool


def name_run_output(folder: Path, stem: str, source: str, config: Any, compare_original: bool,
                    earlier: Sequence[str] = ()) -> Named:  # fmt: skip
    """The output name a run of ``config`` on ``source`` writes in ``folder``, claimed (``claim_output_path``, with
    ``earlier``), with the notes on the names passed over. Reads and hashes the source's files: called on a thread."""
    from gpu.library import ModelLibrary

    notes: list[str] = []
    claim = claim_output_path(folder, stem, source, config, notes, earlier)
    try:  # refused as the run would refuse it, before the run starts: the models folder lies in a model it reads
        _streaming().base_pipeline.check_output_not_read(claim.target, source, config.base, ModelLibrary())
    except BaseException:
        claim.release()
        raise
    return Named(claim, notes, source, config, compare_original)


def _resumed_stems(stem: str, config: Any) -> list[str]:
    """The names (no suffix) whose stopped runs a run of ``config`` named ``stem`` (``output_name``) resumes: its own,
    and for a method with a format of its own (NF4) the names the wizard gave it before they left out the precision,
    ``<stem>-int4``, ``<stem>-int8``, … (its resume key has no precision): named ``<stem>`` only, such a stopped run
    was listed as resumed by these settings, yet a run started over beside it."""
    if config.method not in OWN_FORMAT_METHODS:
        return [stem]
    from gpu.modules.layer_spec import PRECISIONS  # imports torch (gpu.quant): the engine is loaded by now

    return [stem, *(f"{stem}-{precision}" for precision in PRECISIONS)]


def _claim_resumed_name(folder: Path, stems: list[str], key: ResumeKey | None,
                        on_busy: Callable[[OutputBusy], None]) -> OutputClaim | None:  # fmt: skip
    """The claim of ``<stem>.safetensors`` or ``<stem>-N.safetensors`` in ``folder``, of one of ``stems`` (the first
    stem first, then the lowest N), whose run a run with ``key`` resumes (its parts folder, and no model file of that
    name), and that no other run claims; None when there is none. The first free name was taken before: once the
    plain name's stopped run was deleted (Unfinished runs…), a run with the settings of the stopped run in the ``-2``
    name started over in the plain one, and that run was never resumed. ``on_busy``: told of a name another run
    holds (``claim_first``'s)."""
    if key is None:
        return None
    streaming = _streaming()
    suffix = streaming.parts_folder.PARTS_SUFFIX
    alternatives = "|".join(map(re.escape, stems))
    name = re.compile(rf"({alternatives})(?:-([1-9]\d*))?\.safetensors{re.escape(suffix)}")
    try:
        found = [(stems.index(m.group(1)), int(m.group(2) or 1), entry) for entry in folder.iterdir()
                 if (m := name.fullmatch(entry.name))]  # fmt: skip
    except OSError:  # no models folder yet, or unreadable: nothing to resume
        return None

    def not_resumed(out: Path) -> bool:
        parts = streaming.parts_folder.parts_dir(out)
        return out.exists() or out.is_symlink() or streaming.resume.resumes_from(parts, key) is not True

    outs = (parts.with_name(parts.name[: -len(suffix)]) for _stem, _n, parts in sorted(found))
    return claim_first(outs, not_resumed, "quantize run", on_busy)


def _taken_note(parts: Path, key: ResumeKey | None) -> str:
    """Why the run does not write into the name of ``parts``'s run, in words."""
    streaming = _streaming()
    resume = streaming.resume
    own = "this run writes a name of its own."
    delete = "Unfinished runs… on the calibration page lists it, to delete."
    in_the_way = streaming.parts_folder.parts_in_the_way(parts)
    if in_the_way:
        return f"{in_the_way}: {own}"
    if key is None:
        return f"{parts.name} holds an earlier run's work, kept in {parts.parent}; {own}"
    # The engine's one reading of the manifest, and its words: none, an unproven source, another version, or the
    # settings that differ (as the run says them when it discards the folder).
    differs = resume.differs_from(parts, key)
    if differs == resume.NO_MANIFEST:
        return (f"{parts.name} has {resume.NO_MANIFEST}, but holds files of an earlier run. It stays in "
                f"{parts.parent}; {own} {delete}")  # fmt: skip
    if differs == resume.UNPROVEN:  # "resume when you run with that run's settings" is untrue of it
        return (f"{parts.name} holds the blocks of an earlier run, which no run resumes: {resume.UNPROVEN}. They "
                f"stay in {parts.parent}; {own} {delete}")  # fmt: skip
    if differs == resume.ANOTHER_VERSION:
        return (f"{parts.name} holds the blocks of a run of another version of the quantizer, which this version "
                f"cannot resume. It stays in {parts.parent}; {own} {delete}")  # fmt: skip
    return (f"{parts.name} holds the blocks of an earlier run made with other settings. They stay in {parts.parent} "
            f"and resume when you run with that run's settings (it differs: {differs}); {own} {delete}")  # fmt: skip


def new_told() -> Any:
    """A ``QuantizeTold`` (``gpu.streaming.stopped``): what the engine says of a run's parts folder, as it goes."""
    return _streaming().stopped.QuantizeTold()


def stopped_note(out_path: Path, told: Any, if_stopped_now: bool = False) -> str:
    """Where the wizard's run into ``out_path``, stopped (cancelled, failed), left its parts folder, or would if
    stopped now (``if_stopped_now``: asked "Stop quantizing?" while it works), and how a run of the wizard uses it,
    as the engine said it (``told``: a ``QuantizeTold``); "" when there is nothing to say. The command line's Ctrl-C
    note (``gpu.streaming.stopped.stopped_note``) in the wizard's words: it said the blocks of an earlier run of
    other settings, which this run was to replace, were resumed by "a run with the same settings", which writes a
    name of its own beside them (``free_output_path``). The wizard never asks a run to start over (``to_resume``)."""
    streaming = _streaming()
    again = streaming.stopped.RunAgain("run again with the same settings", _wizard_setting, changed="run again with ",
                                       replaces=False, command="the wizard")  # fmt: skip
    return streaming.stopped.stopped_note(streaming.parts_folder.parts_dir(out_path), told, again, if_stopped_now)


def kept_note(result_path: str | None, out_path: Path | None, told: Any, if_stopped_now: bool = False) -> str:
    """What a stopped run leaves for the next one, in words (in the log and on the run page; with
    ``if_stopped_now``, what stopping the run that still works would leave): ``result_path``, the model written,
    else the ``stopped_note`` of the run into ``out_path`` from what the engine said (``told``, a ``QuantizeTold``;
    None: no run was made)."""
    if result_path:  # written: the parts folder is gone, and stopping skips only the comparison
        return (f"The model is complete ({Path(result_path).name}) and goes into the library; stopping skips "
                "only the comparison images.")  # fmt: skip
    if told is None or not out_path:
        note = ""
    else:
        note = stopped_note(out_path, told, if_stopped_now)
    return sentence(note) if note else "Nothing is finished yet, so nothing is kept."


# How the wizard's pages name a setting (a ``QuantizeConfig`` field, or "base": ``PartsToReplace.other_base``),
# its value in the words. The others resume no folder of the wizard's: the method, precision and rank name the
# file a run writes (``output_name``), so a run with other ones writes another and never looks at this folder;
# the seed and the tokens per layer are no setting of the wizard.
_WIZARD_SETTINGS = {"alpha_points": "{} alpha search points", "calib_prompts": "{} prompts",
                    "calib_steps": "{} steps per prompt", "base": "the base pipeline {}"}  # fmt: skip


def _wizard_setting(name: str, value: object) -> str | None:
    """How the wizard is given the setting ``name`` of ``value``, in words ("5 alpha search points"); None when it
    has none."""
    if name == "shared_smoothing":
        return f"Smooth Q/K/V together {'checked' if value else 'unchecked'}"
    if name == "calib_steps" and value is None:
        return "the model's default steps per prompt"
    words = _WIZARD_SETTINGS.get(name)
    return words.format(value) if words is not None else None


def unfinished_runs(folder: Path, source: str | None = None, config: Any = None) -> list[UnfinishedRun]:
    """The unfinished runs (parts folders) in ``folder``, newest first, each saying whether a run of ``config`` on
    ``source`` resumes from it (never, without them)."""
    key = resume_key(source, config) if source and config is not None else None
    return _streaming().unfinished.unfinished_runs(folder, key)


def unfinished_summary(runs: list[UnfinishedRun], error: BaseException | None) -> str:
    """The calibration page's line on the unfinished ``runs`` in the models folder: how many, and their size; or
    the ``error`` that kept the folder from being read."""
    size = human_bytes(sum(run.size_bytes for run in runs))
    return (f"The models folder could not be read: {error}" if error is not None else
            f"{counted(len(runs), 'unfinished run')} in the models folder ({size})." if runs else
            "None in the models folder.")  # fmt: skip


@dataclass(frozen=True)
class Deletion:
    """The deletion of an unfinished run under way (``UnfinishedRuns.deleting``): what the page, the Unfinished
    runs dialog and Quantize (which waits) go by."""

    run: UnfinishedRun  # the run deleted
    lookup: Lookup  # its thread's, whose end is the deletion's


def delete_unfinished_run(run: UnfinishedRun) -> None:
    """Deletes ``run``'s parts folder (the engine's ``delete_unfinished_run``: never a model file, nor the folder
    of a run working in another process). ``OutputBusy`` as well while a run of this process has it as its output,
    even one still waiting to start (it would resume from it)."""
    global _deleting
    with _running_lock:
        if run.output in _running:
            raise OutputBusy(f"a quantize run of this window writes {run.output.name}",
                             "wait for that run to end, or stop it")  # fmt: skip
        _deleting = run.parts
        try:
            _streaming().unfinished.delete_unfinished_run(run.parts)
        finally:
            _deleting = None


def not_deleted(run: UnfinishedRun, exc: BaseException) -> EngineError:
    """What the wizard says when the deletion of the unfinished ``run`` failed with ``exc`` (the main window, when
    the wizard was closed since): which run and folder, that it is still there and how big, the engine's reason and
    remedy, and how to delete it once that is done. The engine's words alone named neither what had been asked nor
    where to ask again (minutes later, with the wizard gone), nor that the folder was still there. A folder a run
    writes into (``OutputBusy``) is not to be deleted by hand: that remedy is left out then."""
    error = classify(exc)
    remedy = f"{sentence(error.hint)[:-1]}, then delete" if error.hint else "Delete"  # the cause first, if any
    by_hand = "" if isinstance(exc, OutputBusy) else ", or delete the folder yourself"
    hint = f"{remedy} it again with Unfinished runs… on the calibration page of Quantize this model…{by_hand}."
    return EngineError(error.kind, f"The unfinished quantize run {run.output.name} was not deleted: "
                                   f"{sentence(error.message, capital=False)} Its folder {run.parts} "
                                   f"({human_bytes(run.size_bytes)}) is still there.", hint)  # fmt: skip


def default_ram_budget_gib(installed: int | None) -> float:
    """The RAM budget's default: the engine's, but at most ``RAM_SHARE`` of the ``installed`` RAM (bytes; None:
    unknown). 24 GiB on a 16 GB laptop kept the activations in RAM: the machine swapped, or the app was killed."""
    if not installed:
        return DEFAULT_RAM_BUDGET_GIB
    return max(1.0, min(DEFAULT_RAM_BUDGET_GIB, round(installed * RAM_SHARE / 2**30, 1)))
