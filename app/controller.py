"""The app's glue: owns the store, the observable state and the engine thread; panels talk only to this.

Everything here runs on the GUI thread. Engine work is sent to the worker by queued signals; results come
back by signals. A job's images are already on disk (written atomically by the worker) when ``finished``
arrives; committing their rows here is the last step, so a crash in between is repaired by reconciliation.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal

from app.data_dir import DataDir
from app.engine_errors import EngineError
from app.engine_worker import EngineStatus, EngineThread, Job, quantize_runs
from app.gallery_model import GalleryModel
from app.generation_state import JobState, PromptState
from app.history_actions import HistoryActions
from app.history_model import HistoryModel, prompt_line
from app.image_files import inspect_image_settings, read_image_settings
from app.job_queue import JobQueue, unusable_loras_error
from app.lora_state import LoraState
from app.memory_state import MemoryState
from app.prompt_length_state import PromptLengthState
from app.prompt_measure import PromptMeasure
from app.reconcile import FolderImport, storable
from app.settings import Settings
from app.startup_notices import check_images_folder, database_notices, lora_not_restored_notice
from app.store import ImageRecord
from app.store_recovery import open_store
from app.trash_actions import TrashActions
from app.trash_listing import TrashListing
from app.wording import counted, sentence, were
from gpu.atomic import atomic_write_with
from gpu.errors import UserError, named_few
from gpu.generation.image_metadata import kind_by_name
from gpu.generation.png_metadata import ImageSettings, encodable, png_name_problem
from gpu.generation.prompt_length import PromptMeter
from gpu.model_files import known_model_hash
from gpu.version import APP_NAME

# What to drop instead of a file with no settings (the app's own dialogs say it the same way).
DROP_HINT = ("Drop a PNG saved by Nibble Studio, A1111/Forge or ComfyUI, a JPEG, WebP or GIF saved by A1111/Forge, "
             "or the .txt file A1111/Forge write beside an image, as it was saved: image editors and many sites "
             "remove the settings from the file.")  # fmt: skip

log = logging.getLogger(__name__)

def _unusable_hint(entry: Any) -> str:
    """What to do about the library model ``entry`` that cannot be used. Its file gone: picking a "(missing)" entry
    looks at its file again (a network or removable drive back), so putting the file back and picking it is
    enough. Its file there but unusable (a newer format, a damaged copy, unreadable): the engine's remedy."""
    name = entry.name
    if getattr(entry, "missing", True):
        return (f"Put the file back where it was (or reconnect its drive) and pick '{name}' again, or remove it from "
                "the Models list.")
    remedy = getattr(entry, "hint", "")
    return sentence(f"{remedy}; or remove '{name}' from the Models list" if remedy else
                    f"Remove '{name}' from the Models list, or add the model again")


class AppController(QObject):
    error = Signal(object)  # EngineError: the window shows a dialog
    engine_ready = Signal(object)  # EngineStatus
    library_changed = Signal(list)  # list[ModelEntry]
    model_info_changed = Signal(object)  # ModelInfo
    job_finished = Signal(list)  # list[ImageRecord]
    settings_restored = Signal(list)  # names of the restored fields
    # An add's end: the number add_model returned for it, and the library's name for the model (str) or the
    # EngineError why it was refused. The wizard knows its own add by it: the first add or error to arrive was
    # taken as its own (one the user made meanwhile, "Type a prompt first.").
    add_ended = Signal(int, object)
    status_message = Signal(str)  # a passing word for the status bar: worth saying, not worth a dialog

    # Requests to the engine thread (queued connections; the worker runs them in order).
    _init_engine = Signal()
    _submit = Signal(object)
    _describe = Signal(str, int)  # model, the request's number (see _on_describe_failed)
    _add_model = Signal(str, int)  # path, the add's number (add_ended)
    _remove_model = Signal(str)
    _read_library = Signal(int)  # the request's number, sent back with the list it read (library_read)
    # threading.Event | None, set once the model is unloaded, and the run's answer to whether it still needs the
    # room, a Callable[[], bool] | None (EngineWorker.unload)
    _unload = Signal(object, object)
    _start_waiting = Signal()  # jobs held back by a quantize run: a cancelled one ends at once

    def __init__(self, data: DataDir, settings: Settings) -> None:
        super().__init__()
        self.data = data
        self.settings = settings
        self.notices: list[EngineError] = []  # start-up repairs the window tells the user about
        # raises StoreUnavailable: run_app shows it, the app cannot start
        opened = open_store(data.database, data.images)
        self.store = opened.store
        # A re-import after a lost database, begun now or cut short by a quit or a crash at an earlier start: the
        # stars and prompts it gives back are in the database until it ends.
        recovery = self.store.recovery()
        report, new, failed = check_images_folder(self.store, data)
        if failed is not None:
            self.notices.append(failed)
        self.reconcile_report = report
        # Its new files are imported once the window is up. A failed check imports none, nor ends a recovery: it goes
        # on at the next start, which finds the new files.
        self.folder_import = FolderImport(self.store, data, new, report, recovery if failed is None else None, self)
        self.folder_import.failed.connect(self.error)
        self.notices += database_notices(data, opened, recovery, report)
        self.gallery = GalleryModel(self.store, data, self)
        self.folder_import.imported.connect(self.gallery.add_imported)
        self.gallery.wait_for_gather(self.folder_import)
        self.trash = TrashActions(self.gallery, data, self.store.path, self.error.emit, self.status_message.emit)
        self.gallery.emptying_progress.connect(self.trash.on_emptying_progress)
        self.gallery.trash_emptied.connect(self.trash.on_trash_emptied)
        self.history = HistoryModel(self.store, self)
        self.folder_import.history_changed.connect(self.history.reload)
        self.prompt = PromptState()
        self.prompt.load_last_job(settings.last_job)
        self.prompt_history = HistoryActions(self.history, self.prompt, self.store.path, self.error.emit,
                                             self.status_message.emit)  # fmt: skip
        # A first launch (no size saved by a last session) takes the model's own defaults once the engine is
        # ready. Decided now, before anything saves: the window's first resize starts the autosave, which wrote
        # the panel's placeholder size into ``settings.last_job`` before a slow engine start was ready.
        # Kept as the panel's fields then, so that the defaults go only to those the user leaves alone until the
        # engine is ready (a size typed, or an image's settings reused, meanwhile were overwritten); None: a later
        # launch.
        self._launch_fields = None if settings.last_job.width else self.prompt.model_default_fields()
        self.job = JobState()
        self.loras = LoraState()
        self.loras.notice.connect(self.error.emit)  # what is wrong with a folder of LoRAs, once it is read
        self.notices += [lora_not_restored_notice(text) for text in self.loras.restore(settings.loras)]
        self.loras.add_shipped(settings.removed_examples)
        self.memory = MemoryState()
        self.prompt_length = PromptLengthState()
        self.prompt_measure = PromptMeasure(self.prompt, self.prompt_length, self)
        self.prompt.prompt_changed.connect(self.prompt_measure.measure)
        self.entries: list[Any] = []
        self._library_known = False  # the entries are the library's: the engine was ready once (``_on_ready``)
        self._model_to_restore: tuple[str, str] | None = None  # (model, model hash) of an image restored before
        self.gpu: Any = None
        self.model_info: Any = None
        self._removing: tuple[str, Any] | None = None  # (name, path) of a model the user asked to remove
        self._gone: set[str] = set()  # models whose file went missing while the app ran, said so by _on_library
        self._rechecking: str | None = None  # a missing model the user picked, whose file is being looked at again
        self._reads = 0  # the number of the last list read asked for (read_library), the answer _rechecking awaits
        self._adds = 0  # the number of the last add asked for (add_model)
        self._unselected_adds: set[int] = set()  # adds whose model is not to be selected (add_model's select)
        self._defaults_since: dict[str, Any] | None = None  # fields when a model was picked, till its defaults come
        self._asked: tuple[int, str] = (0, "")  # the number and model of the last describe asked of the engine
        self._retry = 0  # the number of the describe asked again, its model's file back (see _on_describe_failed)
        self._engine = EngineThread(data)
        worker = self._engine.worker
        worker.preview_every = settings.preview_every
        self.queue = JobQueue(self.job, self.gallery, self.loras, data, self.store.path, worker, self._submit.emit,
                              self._start_waiting.emit, self.error.emit, self.job_finished.emit, self)  # fmt: skip
        self._init_engine.connect(worker.initialize)
        self._submit.connect(worker.generate)
        self._describe.connect(worker.describe)
        self._add_model.connect(worker.add_model)
        self._remove_model.connect(worker.remove_model)
        self._read_library.connect(worker.read_library)
        self._unload.connect(worker.unload)
        self._start_waiting.connect(worker.start_waiting)
        worker.ready.connect(self._on_ready)
        worker.library_changed.connect(self._on_library)
        worker.library_read.connect(self._on_library_read)
        worker.model_added.connect(self._on_model_added)
        worker.add_failed.connect(self._on_add_failed)
        worker.models_found.connect(self._on_models_found)
        worker.already_in_library.connect(self._on_already_in_library)
        worker.model_described.connect(self._on_described)
        worker.describe_failed.connect(self._on_describe_failed)
        worker.prompt_meter_ready.connect(self.prompt_measure.on_meter)
        worker.model_loaded.connect(self._on_described)
        worker.started.connect(self.queue.on_started)
        worker.waiting.connect(self.queue.on_waiting)
        worker.progress.connect(self.queue.on_progress)
        worker.image_saved.connect(self.queue.on_image_saved)
        worker.finished.connect(self.queue.on_finished)
        worker.cancelled.connect(self.queue.on_cancelled)
        worker.failed.connect(self._on_failed)
        quantize_runs.ended.connect(self._on_quantize_runs_ended)

    # ---- engine life ---------------------------------------------------------------------------------------

    def start_engine(self) -> None:
        """Called once the window is visible: the worker imports torch and scans the library then."""
        self._init_engine.emit()

    def shutdown(self) -> None:
        """The window closes: the engine stopped, what it finished committed, the store closed."""
        self.gallery.stop()  # first: queued decodes would keep the CPU from the engine's stop
        self.loras.cancel_scan()  # a folder of LoRAs being read: nothing more added, nor said
        self.loras.cancel_search()  # an image's LoRAs looked for by hash: nothing switched on, nor said
        self.queue.stop()
        self._engine.stop()
        # What the engine sent while this thread waited for its stop (an image finished past its last step: decoded
        # and saved, its ``image_saved`` and ``finished`` queued here) is delivered now, while the store is open:
        # delivered after the close, its row was written to a closed database, and the error's dialog, parented
        # to the hidden window, kept the process running after the window had gone.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.MetaCall)
        self.settings.last_job = self.prompt.to_last_job()
        self.loras.save_to(self.settings)
        self.queue.close()
        self.store.close()

    # ---- user actions --------------------------------------------------------------------------------------

    def generate(self) -> Job | None:
        """Queues a job with the prompt panel's settings and the LoRAs switched on (Generate); None, and said why,
        when there is no prompt or a LoRA switched on cannot be used."""
        if not self.prompt.prompt.strip():
            self.error.emit(EngineError("user", "Type a prompt first.", "Describe the image you want to see."))
            return None
        loras = self.loras.requests()  # each enabled file read again if it changed: a job on a gone one would fail
        unusable = self.loras.unusable()
        if unusable:  # said now, once per click, rather than by each queued job failing at its LoRA step
            self.error.emit(unusable_loras_error(unusable))
            return None
        self.prompt.next_seed()
        self.prompt.snap_size()  # a side typed off the grid and not yet left: the field shows what runs
        # The job runs with the panel as it is now: a model's defaults still to come must not change it after.
        self._defaults_since = None
        request = self.prompt.build_request()
        request.loras = loras
        if self._model_to_restore is not None and self._model_to_restore[0] != request.model:
            # the job's model is the panel's; the image's comes once the library is known
            self.error.emit(EngineError(
                "notice", f"This job runs on '{request.model}': the model of the image you restored, "
                f"'{self._model_to_restore[0]}', is selected once the engine has started.",
                "Generate again once it is selected to get the image back."))  # fmt: skip
        job = self.queue.add(request)
        self.prompt_history.record_prompt()
        self.queue.submit(job)
        return job

    def cancel(self) -> None:
        """Cancel (Esc): the running job stops at its next step, the queued ones go on (``JobQueue.cancel``)."""
        self.queue.cancel()

    def cancel_all(self) -> None:
        """Cancel all (Shift+Esc): the running job stops, the queued ones never start (``JobQueue.cancel_all``)."""
        self.queue.cancel_all()

    def select_model(self, name: str, apply_defaults: bool = True, unchanged_since: dict[str, Any] | None = None
                     ) -> bool:  # fmt: skip
        """Makes ``name`` the model of the next jobs; a library entry whose file is gone is refused with its
        reason (the current model stays), since every job would fail on it. ``unchanged_since``: the fields as
        they were when the choice was made (``PromptState.model_default_fields``); the defaults go only to those
        still as they were (all of them when None)."""
        entry = self._entry(name)
        if entry is not None and getattr(entry, "facts", None) is None:
            if self._rechecking != name:  # looked at again first: a drive that was away may be back (_on_library)
                self._rechecking = name
                self.status_message.emit(f"Looking at the file of '{name}' again…")
                self._reads += 1
                self._read_library.emit(self._reads)
                return False
            self._rechecking = None
            self.error.emit(EngineError("user", f"The model '{name}' cannot be used: {entry.problem}.",
                                        _unusable_hint(entry)))
            return False
        self._rechecking = None  # another model picked since: the list read for that pick must not undo this one
        self.prompt.model = name
        defaults = getattr(getattr(entry, "facts", None), "defaults", None)
        self._defaults_since = None
        if apply_defaults and defaults is not None:
            # Its facts are in the library's list: its defaults now, so a Generate clicked before the engine has
            # described it (after a running job) runs with them, and the panel shows what ran.
            self.prompt.apply_model_defaults(defaults, unchanged_since)
        elif apply_defaults:
            # Not known here: they come once the engine describes it, and must not undo what the user set
            # meanwhile (nor what a job queued meanwhile ran with: ``generate`` drops them).
            self._defaults_since = unchanged_since or self.prompt.model_default_fields()
        self._ask_describe(name)
        return True

    def _ask_describe(self, name: str) -> None:
        self._asked = (self._asked[0] + 1, name)
        self._describe.emit(name, self._asked[0])

    def is_current(self, name: str) -> bool:
        """Whether ``name`` is the model of the next jobs and its file is usable: picked again, nothing changes."""
        entry = self._entry(name)
        return name == self.prompt.model and entry is not None and getattr(entry, "facts", None) is not None

    def is_rechecking(self, name: str) -> bool:
        """Whether ``name``, picked while missing, has its file looked at again right now (before it is refused)."""
        return self._rechecking == name

    def drop_recheck(self) -> None:
        """The user went on to the current model, or past a missing one: the list read for the re-check of an unusable
        model picked before decides nothing (it selected that model, or refused it with a dialog, after the user
        had left it)."""
        self._rechecking = None

    def _entry(self, name: str) -> Any | None:
        """The library entry named ``name``, or whose name is ``name`` once escaped as images record names that are
        not UTF-8 (``encodable``: the byte 0xe9 of a Latin-1 file name as the text ``\\xe9``)."""
        exact = next((e for e in self.entries if getattr(e, "name", None) == name), None)
        return exact or next((e for e in self.entries if encodable(str(getattr(e, "name", ""))) == name), None)

    def _fallback_model(self) -> str | None:
        """The first model that can be opened (built-in first, as the library lists them)."""
        return next((e.name for e in self.entries if getattr(e, "facts", None) is not None), None)

    def add_model(self, path: str | Path, select: bool = True) -> int:
        """Adds the model at ``path`` to the library; returns the add's number, which ``add_ended`` gives back.
        ``select``: the model added is selected (its defaults applied), as the user asked for it just now. Not for
        an add the user did not ask for at that moment (a quantize run that finished after its wizard was closed):
        the model and settings the user works with stay, and the status bar says the model was added."""
        self._adds += 1
        if not select:
            self._unselected_adds.add(self._adds)
        self._engine.add_model(str(path))  # owed until the engine takes it up: added at quit if it never did
        self._add_model.emit(str(path), self._adds)
        return self._adds

    def remove_model(self, name: str) -> None:
        entry = self._entry(name)
        self._removing = (name, getattr(entry, "path", None))  # said once the library confirms it
        self._remove_model.emit(name)

    def add_loras(self, paths: list[str | Path]) -> None:
        """LoRA files the user picked, switched on; a file that is no readable LoRA is refused and named."""
        _added, refused = self.loras.add_files(paths)
        if refused:
            self.error.emit(EngineError("user", "\n\n".join(refused),
                                        "Use a FLUX.1 LoRA saved as .safetensors (download a damaged one again). "
                                        "The LoRA list is otherwise unchanged."))

    def add_lora_folder(self, folder: str | Path) -> None:
        """Every LoRA file of ``folder`` and its subfolders (switched off), read on a thread of its own while the
        window is in use (``LoraState.scan_folder``); what is wrong with the folder is said when it ends."""
        self.loras.scan_folder(folder)

    def unload_model(self, unloaded: threading.Event | None = None, needed: Callable[[], bool] | None = None) -> None:
        """Frees the generation model's memory for a quantize run, which needs the room: the engine unloads it once
        the job it runs has ended (unless the run's ``needed`` says no by then), then sets ``unloaded``."""
        self._unload.emit(unloaded, needed)

    def delete_images(self, rows: list[int]) -> None:
        """Gallery rows to the trash folder (``TrashActions.delete_images``)."""
        self.trash.delete_images(rows)

    def undo_delete(self) -> None:
        """Brings back every image of the last deletion (``TrashActions.undo_delete``)."""
        self.trash.undo_delete()

    def empty_trash(self, listing: TrashListing) -> bool:
        """Deletes the images in the trash as ``listing`` found it for good (``TrashActions.empty_trash``);
        returns whether it began."""
        return self.trash.empty_trash(listing)

    def save_image_as(self, record: ImageRecord, target: Path) -> Path | None:
        """A byte-for-byte copy of the image's PNG (so its generation settings come along) written atomically
        at ``target``; ``.png`` is added to a name without a suffix. An error names the file and the reason."""
        source = self.gallery.path_of(record)
        target = Path(target)
        if not target.suffix:
            target = target.with_suffix(".png")
        problem = ("its file is missing" if not source.is_file()
                   else png_name_problem(target))  # fmt: skip
        hint = "Pick another folder, or a name ending in .png."
        if not problem:
            try:
                written = atomic_write_with(target, lambda tmp: shutil.copyfile(source, tmp))
                self.status_message.emit(f"The image {source.name} was saved as {written}.")  # else: no sign
                return written
            except UserError as exc:  # the write failed (atomic_write_with names the target); nothing was replaced
                problem, hint = str(exc).removeprefix(f"cannot write {target}: "), exc.hint or hint
        self.error.emit(EngineError("user", f"The image {source.name} could not be saved as {target}: {problem}.",
                                    hint))
        return None

    def reuse_settings(self, record: ImageRecord) -> None:
        settings = dict(record.settings) or (read_image_settings(self.gallery.path_of(record)) or {})
        notes = self._restore(settings)
        if notes:
            self._say_not_as_saved(Path(record.path).name, notes)

    def forget_prompts(self, rows: list[int]) -> None:
        """History rows removed (``HistoryActions.forget_prompts``)."""
        self.prompt_history.forget_prompts(rows)

    def clear_history(self) -> None:
        """Every prompt of the history forgotten (``HistoryActions.clear_history``)."""
        self.prompt_history.clear_history()

    def reuse_prompt(self, prompt: str, negative_prompt: str) -> None:
        """A history entry's prompts put in the prompt panel."""
        self.prompt_history.reuse_prompt(prompt, negative_prompt)

    def restore_from_file(self, path: Path) -> ImageSettings | None:
        """``restore_from_files`` of one file."""
        return self.restore_from_files([Path(path)])

    def restore_from_files(self, paths: list[Path], web_addresses: list[str] | None = None) -> ImageSettings | None:
        """Settings from dropped files (PNGs: ours, A1111 ``parameters`` or ComfyUI; JPEG and WebP: A1111/Forge
        EXIF), each read as what its content says it is: those of the first file that has some (one image's
        settings fill the form: the others are named as not used, not silently dropped); one message says what
        was not restored as saved, or why none could be ("it is a JPEG image, not a PNG", "it is a text file, not
        an image"). ``web_addresses``: what a drag from a web browser carries instead of a file (the image is not
        on this computer yet); named with the other images not used when a file gave settings, or alone when no
        file was dropped. Returns what was read from the file restored (None: none was)."""
        web = web_addresses or []
        shown = named_few([prompt_line(url, 80) for url in web])  # a data: address may be megabytes
        one = len(web) == 1
        save = f"save the image{'' if one else 's'} first, then drop the file{'' if one else 's'}"
        if not paths and web:  # a web browser's drag: said, not refused without a word
            what = "is a web address" if one else "are web addresses"
            self.error.emit(EngineError("user", f"Nothing was restored: {shown} {what}: {save}.", DROP_HINT))
            return None
        without: list[str] = []
        for index, path in enumerate(paths):
            found = inspect_image_settings(path)
            if not found.settings:
                why = "; ".join(found.problems) or "it carries no generation settings"
                if len(paths) == 1 and not web:
                    self.error.emit(EngineError("user", f"Nothing was restored from {path.name}: {why}.", DROP_HINT))
                    return None
                without.append(f"{path.name} ({why})")
                continue
            notes = found.problems + self._restore(found.settings)
            unused = [p.name for p in paths[index + 1 :]]
            if unused:
                notes.append(f"the other dropped images ({', '.join(unused)}) were not used: the form holds one "
                             "image's settings")  # fmt: skip
            if without:
                notes.append(f"{', '.join(without)}, dropped before it, carry no generation settings")
            if web:  # dragged along with the file (a browser's and a file manager's in one drag): not ignored
                notes.append(f"the dropped web address{'' if one else 'es'} {shown} {were(len(web))} not used "
                             f"({save})")  # fmt: skip
            if notes:
                several = len(paths) + len(web) > 1
                self._say_not_as_saved(path.name, notes, " Drop one image at a time." if several else "")
            return found
        dropped = "images" if all(kind_by_name(p) for p in paths) else "files"  # a folder, a text file: no image
        if web:  # dragged along with the files: named with them, not ignored
            without.append(f"{shown} ({'a web address' if one else 'web addresses'}: {save})")
        self.error.emit(EngineError(
            "user", f"None of the dropped {dropped} carries generation settings: {', '.join(without)}.",
            DROP_HINT))  # fmt: skip
        return None

    def _say_not_as_saved(self, name: str, notes: list[str], more_hint: str = "") -> None:
        self.error.emit(EngineError(
            "notice", f"Settings restored from {name}, but not all as saved: {'; '.join(notes)}.",
            f"Check the prompt panel before you generate.{more_hint}"))  # fmt: skip

    def _restore(self, settings: dict[str, Any]) -> list[str]:
        """Fills the form (and model, LoRAs) from ``settings`` -> what the form did not take as saved."""
        settings, notes = _valid_texts(settings)
        applied, form_notes = self.prompt.restore_settings(settings)
        notes += form_notes
        if self._launch_fields is not None:  # a first launch's model defaults, still to come, skip what it set
            for key in applied:
                self._launch_fields.pop(key, None)
        model, recorded = settings.get("model"), str(settings.get("model_hash") or "")
        if model and self._library_known:
            applied += self._restore_model(str(model), recorded, notes)
        elif model:  # the library is listed once the engine is ready: every model was "not in your library"
            self._model_to_restore = (str(model), recorded)
        ours, refs = str(settings.get("version", "")).startswith(APP_NAME), settings.get("lora_refs")
        if ours and ("lora_list" in settings or not isinstance(refs, list)):  # no lora_list: made without LoRAs
            # several rows of a file name: the one with the image's hash is looked for (as for refs), said when found
            for text in self.loras.restore_used(settings.get("lora_list") or [], self._say_loras_not_found):
                self.error.emit(EngineError("notice", text, "Add the LoRA file again in the LoRA panel."))
            applied.append("loras")
        elif isinstance(refs, list):  # another program's (or ours, its A1111 text alone): LoRAs by name and hash
            self._restore_refs(refs)
            applied.append("loras")
        else:  # no LoRAs could be read (a ComfyUI graph of custom nodes): the panel stays, none is switched off for it
            self.loras.cancel_search()  # nor on for an image dropped before
        self.settings_restored.emit(applied)
        return notes

    def _restore_model(self, model: str, recorded: str, notes: list[str]) -> list[str]:
        """Selects the library's model for an image made with ``model`` whose weights hashed to ``recorded``
        (``_image_model``), with a note in ``notes`` when it is not that file; says so when there is none that
        opens. -> ["model"] when one was selected, else []."""
        entry, note = self._image_model(model, recorded)
        if note:
            notes.append(note)
        if entry is not None and getattr(entry, "facts", None) is not None:
            self.select_model(entry.name, apply_defaults=False)  # its name, not the image's escaped one
            return ["model"]
        # the same settings on another model give another image: say so rather than let it pass
        self.error.emit(EngineError(
            "notice", f"The image was made with the model '{model}', which "
            f"{'cannot be opened here' if entry is not None else 'is not in your library'}. Its other "
            f"settings were restored; new images use '{self.prompt.model}'.",
            "Add that model in the Models panel to get the same image back."))
        return []

    def _image_model(self, model: str, recorded: str) -> tuple[Any | None, str]:
        """(the library entry to restore for an image made with the model ``model`` whose weights hashed to
        ``recorded`` (its "Model hash"; "" when none is recorded), a note when it is not the file the image was made
        with). A name alone picked another file the library gives that name now (one removed and another added
        under its name; an image made from a path, named by the file's stem). Only hashes known without reading
        the files are compared (``known_model_hash``: models this session loaded): hashing gigabytes here would
        freeze the window. The entry of that name when its hash is the image's, or not known and no other's is;
        else the usable entry whose known hash is the image's; else the entry of that name, said to be another
        file."""
        entry = self._entry(model)
        if not recorded:
            return entry, ""
        usable = [e for e in self.entries if getattr(e, "facts", None) is not None]
        hashes = {e.name: known_model_hash(e.path) for e in usable}  # "" when not known
        same = [e for e in usable if hashes[e.name].lower() == recorded.lower()]
        if any(e is entry for e in same):
            return entry, ""
        if same:
            return same[0], (f"the model: the image's '{model}' is '{same[0].name}' here (the file with its model "
                             f"hash, {recorded}), which is selected")  # fmt: skip
        if entry is not None and hashes.get(entry.name):
            return entry, (f"the model: '{entry.name}' here is not the file the image was made with (its model hash "
                           f"is {hashes[entry.name]}, the image's {recorded}): new images may differ")  # fmt: skip
        return entry, ""

    def _restore_refs(self, refs: list[Any]) -> None:
        """The LoRA panel as an image of another program names its LoRAs (``LoraState.restore_refs``): each value
        not restored as saved is said, and one notice names all those not in the panel once that is known (after
        the search of the files' contents, when one runs)."""
        self._say_loras_not_found([], self.loras.restore_refs(refs, self._say_loras_not_found))

    def _say_loras_not_found(self, missing: list[str], notices: list[str]) -> None:
        """``LoraState.restore_refs``'s and ``restore_used``'s settled: the LoRAs of the dropped image that are not
        in the panel, and what was not restored as saved among those found by their content."""
        if missing:
            one = len(missing) == 1
            self.error.emit(EngineError(
                "notice", f"The image used {counted(len(missing), 'LoRA')} not in the LoRA panel "
                f"({named_few([repr(name) for name in missing], 5)}); new images are made without "
                f"{'it' if one else 'them'}.", f"Add the LoRA file{'' if one else 's'} in the LoRA panel (found by "
                "file name or content), then drop the image again."))  # fmt: skip
        for text in notices:
            self.error.emit(EngineError("notice", text, "Check the LoRA panel before you generate."))

    # ---- worker signals ------------------------------------------------------------------------------------

    def _on_ready(self, status: EngineStatus) -> None:
        self.gpu = status.gpu
        self.engine_ready.emit(status)
        self.entries = status.entries
        self._library_known = True
        if self._model_to_restore is not None:  # an image restored while the engine started: its model now
            (model, recorded), self._model_to_restore = self._model_to_restore, None
            notes: list[str] = []
            if self._restore_model(model, recorded, notes) and self.queue.idle:
                self._launch_fields = None  # the image's model, with the image's settings: no defaults
            for note in notes:
                self.error.emit(EngineError("notice", f"The restored image's settings, {note}.",
                                            "Check the Models panel before you generate."))  # fmt: skip
        last = self.prompt.model
        entry = self._entry(last)
        if entry is None or getattr(entry, "facts", None) is None:
            # The last session's model was removed, or its file moved or deleted since: start on one that opens.
            fallback = self._fallback_model()
            if entry is not None and fallback is not None:
                self._say_cannot_open(entry, " you used last time", fallback, "notice")
            self.prompt.model = fallback or last
            apply_defaults = True  # another model: its own size, steps and guidance
        else:
            # A first launch takes the model's own defaults (native size, steps, guidance); later launches keep
            # what the user left in the prompt panel, and so does a first one whose job, queued before the engine
            # was ready, runs with the panel as it is (the panel shows what ran).
            apply_defaults = self._launch_fields is not None and self.queue.idle
        since, self._launch_fields = self._launch_fields, None  # once: a later ready keeps the user's fields
        self.library_changed.emit(self.entries)
        self.select_model(self.prompt.model, apply_defaults=apply_defaults, unchanged_since=since)
        if self.queue.idle:
            self.job.status = "Ready"

    def _say_cannot_open(self, entry: Any, when: str, fallback: str | None, kind: str) -> None:
        """Why the selected model ``entry`` cannot be opened, and the model selected instead; ``when``: " you
        used last time" for the last session's."""
        instead = f" '{fallback}' is selected instead." if fallback is not None else ""
        self.error.emit(EngineError(
            kind, f"The model '{entry.name}'{when} cannot be opened: {entry.problem}.{instead}",
            _unusable_hint(entry)))

    def _on_library_read(self, asked: int, entries: list[Any]) -> None:
        """The list read for request ``asked`` (``read_library``): the answer a missing model picked awaits."""
        self._on_library(entries, answered=asked)

    def _on_library(self, entries: list[Any], answered: int = 0) -> None:
        self.entries = entries
        self.library_changed.emit(entries)
        if self._rechecking is not None and self._entry(self._rechecking) is None:  # removed meanwhile
            self._rechecking = None
        # A missing model picked is decided by the list read after the pick, not by one the engine read before it
        # and sent while the pick was made (a failed describe's): that one refused a file that was back.
        if self._rechecking is not None and answered == self._reads:  # selected if its file opens now, else refused
            if self.select_model(self._rechecking):
                self.status_message.emit(f"The model '{self.prompt.model}' opens again; it is selected.")
                self._rechecking = None
        # Names said to be gone stay so only while they are: one put back (added again) is said again next time.
        self._gone &= {e.name for e in entries if getattr(e, "facts", None) is None}
        entry = self._entry(self.prompt.model)
        switched = ""
        if entry is None or getattr(entry, "facts", None) is None:  # the selected model was removed or went missing
            fallback = self._fallback_model()
            if fallback is not None and self.select_model(fallback):
                switched = f"; '{fallback}' is selected"
            if entry is not None:  # its file was moved or deleted while the app ran (a job or its facts found it)
                self._say_cannot_open(entry, "", fallback, "user")
                self._gone.add(entry.name)
        removing, self._removing = self._removing, None
        if removing is not None and self._entry(removing[0]) is None:
            # Said: with only the list changing, the selection (and with it the prompt panel's steps and size)
            # switched to another model unnoticed, and "Remove" may be read as deleting the file.
            name, path = removing
            kept = f" ({path} itself is not deleted)" if path and Path(path).exists() else ""
            self.status_message.emit(f"The model '{name}' was removed from the library{kept}{switched}.")

    def _on_model_added(self, name: str, request: int) -> None:
        """A model just added is what the user wants to use next: selected (its defaults applied), and said. One
        added unasked (``add_model``'s ``select``) is only said, as the models found at start-up are."""
        self.add_ended.emit(request, name)
        if request in self._unselected_adds:
            self._unselected_adds.discard(request)
            # With no model selected (none opens), there is none to name as staying selected.
            kept = f"; '{self.prompt.model}' stays selected" if self.prompt.model else ""
            self.status_message.emit(f"The model '{name}' was added to the library{kept}.")
        elif self.select_model(name):
            self.status_message.emit(f"The model '{name}' was added to the library; it is selected.")

    def _on_add_failed(self, request: int, error: EngineError) -> None:
        """The library refused the model of add ``request``: its asker is told (``add_ended``), the user by the
        dialog every failed request shows."""
        self._unselected_adds.discard(request)
        self.add_ended.emit(request, error)
        self._on_failed(0, error)

    def _on_models_found(self, names: list[str]) -> None:
        """Models found unlisted in the models folder at start-up (an add lost to a quit, a crash or a kill),
        added by the engine: said, as the list grew by itself. Not selected: the user picked no model."""
        self.status_message.emit(f"Added {counted(len(names), 'quantized model')} found in the models folder: "
                                 f"{named_few(names)}.")

    def _on_already_in_library(self, name: str, request: int) -> None:
        """A model added again (the same file or folder, however its path was spelled): the library keeps one
        entry, so the user, who would otherwise see nothing happen, gets it selected and told why (an add not to
        select, ``add_model``, leaves the selection as it is)."""
        self.add_ended.emit(request, name)
        if request in self._unselected_adds:
            self._unselected_adds.discard(request)
            return
        # The model in use already: selecting it again would reset the prompt panel to the model's defaults.
        if name != self.prompt.model and not self.select_model(name):
            return  # refused (its file cannot be opened): select_model said why
        self.status_message.emit(f"The model '{name}' is already in the library; it is selected.")

    def _on_described(self, info: Any) -> None:
        if getattr(info, "name", None) != self.prompt.model:
            return
        self.model_info = info
        self.memory.show_policy(getattr(info, "memory_policy", None))
        self.prompt_measure.measure()
        if self._defaults_since is not None:
            self.prompt.apply_model_defaults(getattr(info, "defaults", {}) or {}, self._defaults_since)
            self._defaults_since = None
        self.model_info_changed.emit(info)

    def _on_describe_failed(self, asked: int, error: EngineError, back: bool = False) -> None:
        """A describe that failed is said only if it was the last asked and its model is still selected: one on a
        model left since (a file away for a moment: the fallback said so, and the list read again found it back)
        or asked again since was shown as a second, generic "no such file" dialog (the engine logged it). One of
        the selected model whose file is ``back`` (the engine's list, read again after the failure, opens it: a
        network or removable drive away for a moment) is asked once more: the panel stayed on "Reading model…"
        under a "no such file" dialog for a model that opens. A second failure is said."""
        number, model = self._asked
        if asked != number or model != self.prompt.model:
            log.info("not shown, asked before the selection changed: %s", error.message)
        elif back and asked != self._retry:
            log.info("the file of the model %s is back; describing it again", model)
            self._ask_describe(model)
            self._retry = self._asked[0]
        else:
            self.error.emit(error)

    def _on_quantize_runs_ended(self) -> None:
        """The selected model's memory plan, predicted again: one predicted while a quantize run held its GPU
        budget was planned for that budget."""
        if self.model_info is not None:
            self._ask_describe(self.prompt.model)

    @property
    def prompt_meter(self) -> PromptMeter | None:
        """The selected model's prompt meter (``PromptMeasure.meter``)."""
        return self.prompt_measure.meter

    def _on_failed(self, job_id: int, error: EngineError) -> None:
        """A request to the engine failed: job ``job_id``, or a request of no job (0). Said, unless already."""
        job = self.queue.job(job_id)
        # A job on a model whose file went missing: _on_library said why once, as it fell back; each queued job
        # on it said the same in a dialog of its own.
        said = job is not None and job.request.model in self._gone
        if job_id:
            self.queue.fail(job_id)
        else:  # a request of no job (a list read among them): a missing model picked awaits no answer now
            self._rechecking = None
        if not said:
            self.error.emit(error)


def _valid_texts(settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``settings`` with each lone surrogate in its prompts (JSON's "\\ud83d", half an emoji, which other programs
    write) made U+FFFD, as the gallery stores them (``app.reconcile.storable``), and a note for each prompt that
    held one. Kept, the prompt box dropped the character unsaid, the token counter raised, and the job failed."""
    notes = []
    for key, name in (("prompt", "prompt"), ("negative_prompt", "negative prompt")):
        text = settings.get(key)
        if isinstance(text, str) and (valid := storable(text)) != text:
            settings = {**settings, key: valid}
            notes.append(f"its {name} held characters that are not valid text (halves of an emoji, as some "
                         "programs write them); each is shown as \ufffd")  # fmt: skip
    return settings, notes
