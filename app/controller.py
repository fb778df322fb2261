"""The app's glue: owns the store, the observable state and the engine thread, and wires them to the
collaborators that hold each concept (``JobQueue``, ``ModelLibrary``, ``SettingsRestore``, ``TrashActions``,
``HistoryActions``, ``PromptMeasure``, the start-up notices); panels talk only to this.

Everything here runs on the GUI thread. Engine work is sent to the worker by queued signals; results come
back by signals, connected to the collaborators (QObjects where the engine thread sends to them, so that they
are delivered here). A job's images are already on disk (written atomically by the worker) when ``finished``
arrives; committing their rows is the last step, so a crash in between is repaired by reconciliation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal

from app.data_dir import DataDir
from app.dropped_read import DroppedRead
from app.engine_errors import EngineError
from app.engine_worker import EngineStatus, EngineThread, Job, quantize_runs
from app.folder_watch import FolderWatch
from app.gallery_model import GalleryModel
from app.generation_state import JobState, PromptState
from app.held_clicks import HeldClick, HeldClicks, refused_clicks_error
from app.history_actions import HistoryActions
from app.history_model import HistoryModel
from app.image_copy import ImageCopy
from app.image_copy import Problem as CopyProblem
from app.image_decode import TooLarge
from app.image_save import ImageSave, images_away_said, put_back
from app.image_viewer_state import ImageViewerState
from app.job_queue import JobQueue, unusable_loras_error
from app.lora_state import LoraState, PickedFiles
from app.lora_twins import twin_loras_error, unread_loras_error
from app.memory_state import MemoryState
from app.model_library import LibraryLinks, ModelLibrary
from app.prompt_length_state import PromptLengthState
from app.prompt_measure import PromptMeasure
from app.reconcile import FolderImport
from app.settings import LastJob, Settings
from app.settings_restore import SettingsRestore
from app.startup_notices import check_images_folder, database_notices, lora_not_restored_notice, models_away_notice
from app.store import ImageRecord
from app.store_recovery import open_store
from app.trash_actions import TrashActions
from app.trash_listing import TrashListing
from gpu.errors import named_few
from gpu.generation.prompt_length import PromptMeter
from gpu.generation.request import GenerationRequest


class AppController(QObject):
    """What the panels call and listen to; its public methods hand each request to the collaborator it concerns."""

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
        self._notes_said: set[str] = set()  # the engine's notes said this session (``_on_noted``)
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
        if (away := models_away_notice(data)) is not None:
            self.notices.append(away)
        self.gallery = GalleryModel(self.store, data, self)
        self.folder_import.imported.connect(self.gallery.add_imported)
        self.folder_import.dates.changed.connect(self.gallery.dates_changed)
        self.gallery.wait_for_gather(self.folder_import)
        # Pictures put in the images folder later are imported while the app runs (from the window's ``start``)
        self.folder_watch = FolderWatch(self.store, data, self.folder_import, self.gallery, self, report.unreadable)
        self.folder_watch.said.connect(self.status_message.emit)  # the images folder back
        self.trash = TrashActions(self.gallery, data, self.store.path, self.error.emit, self.status_message.emit)
        self.image_copy = ImageCopy(self.status_message.emit, self._copy_failed,
                                     lambda: images_away_said(data), self)  # fmt: skip
        self.image_save = ImageSave(data, self.status_message.emit, self.error.emit, self.gallery.file_written, self)
        self.gallery.undo_leaves(self.image_save.writes)
        self.gallery.emptying_progress.connect(self.trash.on_emptying_progress)
        self.gallery.trash_emptied.connect(self.trash.on_trash_emptied)
        self.gallery.judged_again.connect(self.trash.empty_trash)
        self.viewer = ImageViewerState(self.gallery, self.delete_images, self)  # the full-size viewer's
        self.history = HistoryModel(self.store, self)
        self.folder_import.history_changed.connect(self.history.reload)
        self.prompt = PromptState()
        unset = self.prompt.load_last_job(settings.last_job)
        self.prompt_history = HistoryActions(self.history, self.prompt, self.store.path, self.error.emit,
                                             self.status_message.emit)  # fmt: skip
        # The fields no last session saved (all of them at a first launch) take the model's own defaults once the
        # engine is ready. Kept as the panel's fields then, so that the defaults go only to those the user leaves
        # alone until the engine is ready (a size typed, or an image's settings reused, meanwhile were
        # overwritten), and those are saved as unset till then (``last_job``): a session closed before a slow
        # engine start was ready saved the placeholders, which the next start took for the user's; None: no such
        # field.
        launch_fields = {key: value for key, value in self.prompt.model_default_fields().items()
                         if key in unset} or None  # fmt: skip
        self.job = JobState()
        self.loras = LoraState()
        self.loras.folder_scan.notice.connect(self.error.emit)  # what is wrong with a folder of LoRAs, once read
        self.notices += [lora_not_restored_notice(text) for text in self.loras.restore(settings.loras)]
        self.loras.add_shipped(settings.removed_examples)
        # Each LoRA row says whether the selected model can take it, judged by the layers the engine describes of
        # that model; another model selected, none is judged until it is described (the last one's would be wrong)
        self.prompt.model_changed.connect(self.loras.use_model)
        self.model_info_changed.connect(self._judge_loras)
        self.memory = MemoryState()
        self.prompt_length = PromptLengthState()
        self.negative_length = PromptLengthState()  # T5 reads the negative prompt to the same limit
        self.prompt_measure = PromptMeasure(self.prompt, self.prompt_length, self.negative_length, self)
        self.prompt.prompt_changed.connect(self.prompt_measure.measure_prompt)
        self.prompt.negative_prompt_changed.connect(self.prompt_measure.measure_negative)
        self.prompt.guidance_changed.connect(self.prompt_measure.measure_negative)  # at most 1 it may go unused
        self.gpu: Any = None
        self.engine_started = False  # ``gpu`` is the engine's answer (None: no CUDA GPU), not only not known yet
        self._engine = EngineThread(data)
        worker = self._engine.worker
        worker.preview_every = settings.preview_every
        self.library = ModelLibrary(self.prompt, self.memory, self.prompt_measure.measure, LibraryLinks(
            describe=self._describe.emit, read=self._read_library.emit, add=self._add_model.emit,
            remove=self._remove_model.emit, owe_add=self._engine.add_model, owe_remove=self._engine.remove_model,
            changed=self.library_changed.emit, info_changed=self.model_info_changed.emit, add_ended=self.add_ended.emit,
            say=self.error.emit, tell=self.status_message.emit, place=lambda: self.queue.place(),
            jobs_before=lambda place: self.queue.jobs_before(place)), launch_fields, self)  # fmt: skip
        self.restore = SettingsRestore(self.prompt, self.library, self.loras.hash_search, self.gallery,
                                       self.error.emit, self.settings_restored.emit)  # fmt: skip
        # dropped files read on a thread (a share that hangs froze the window); ``dropped.read`` says when done
        self.dropped = DroppedRead(self.restore, self.status_message.emit, self)
        self.queue = JobQueue(self.job, self.gallery, self.loras, data, self.store.path, worker, self._submit.emit,
                              self._start_waiting.emit, self.error.emit, self.job_finished.emit, self)  # fmt: skip
        self.held = HeldClicks(self.loras, self.job, self._release, self.status_message.emit,
                               lambda: self.queue.idle, self)  # fmt: skip
        # What the Models panel says a removal, an add or a model's read waits for goes down as the jobs end
        self.queue.ended.connect(self.library.list_state.follow_queue)
        self.queue.ended.connect(self.held.queue_ended)  # a click held past the last job: said then
        self._init_engine.connect(worker.initialize)
        self._submit.connect(worker.generate)
        self._describe.connect(worker.describe)
        self._add_model.connect(worker.add_model)
        self._remove_model.connect(worker.remove_model)
        self._read_library.connect(worker.read_library)
        self._unload.connect(worker.unload)
        self._start_waiting.connect(worker.start_waiting)
        worker.ready.connect(self._on_ready)
        worker.library_changed.connect(self.library.on_library)
        worker.library_read.connect(self.library.on_library_read)
        worker.removal_ended.connect(self.library.on_removal_ended)
        worker.model_added.connect(self.library.on_model_added)
        worker.add_failed.connect(self._on_add_failed)
        worker.models_found.connect(self.library.on_models_found)
        worker.already_in_library.connect(self.library.on_already_in_library)
        worker.model_described.connect(self.library.on_described)
        worker.describe_failed.connect(self.library.on_describe_failed)
        worker.prompt_meter_ready.connect(self.prompt_measure.on_meter)
        worker.model_loaded.connect(self.library.on_described)
        worker.started.connect(self.queue.on_started)
        worker.waiting.connect(self.queue.on_waiting)
        worker.progress.connect(self.queue.on_progress)
        worker.image_saved.connect(self.queue.on_image_saved)
        worker.finished.connect(self.queue.on_finished)
        worker.cancelled.connect(self.queue.on_cancelled)
        worker.failed.connect(self._on_failed)
        worker.start_failed.connect(self._on_start_failed)
        worker.noted.connect(self._on_noted)
        quantize_runs.ended.connect(self.library.on_quantize_runs_ended)

    def _judge_loras(self, info: Any) -> None:
        """The selected model described (``ModelInfo``): the LoRA rows judged against its layers."""
        self.loras.use_model(info.name, info.lora_layers)

    # ---- engine life ---------------------------------------------------------------------------------------

    def start_engine(self) -> None:
        """Called once the window is visible: the worker imports torch and scans the library then."""
        self._init_engine.emit()

    def shutdown(self) -> None:
        """The window closes: the engine stopped, what it finished committed, the store closed."""
        self.dropped.finish()  # a picture dropped a moment ago: its settings in the form, saved below
        self.image_copy.finish()  # a Ctrl+C of a moment ago: on the clipboard before the window goes
        self.image_save.finish()  # a Save as under way: its file written before the process ends
        self.gallery.stop()  # first: queued decodes would keep the CPU from the engine's stop
        self.loras.folder_scan.cancel_scan()  # a folder of LoRAs being read: nothing more added, nor said
        self.loras.hash_search.cancel_search()  # an image's LoRAs looked for by hash: nothing switched on, nor said
        for request in self.held.requests:  # a Generate waiting for the LoRA files, the quit said cancelled: its
            self.prompt_history.record_prompt(request.prompt, request.negative_prompt)  # prompt kept, as a job's is
        self.held.drop()
        self.queue.stop()
        self._engine.stop()
        # What the engine sent while this thread waited for its stop (an image finished past its last step: decoded
        # and saved, its ``image_saved`` and ``finished`` queued here) is delivered now, while the store is open:
        # delivered after the close, its row was written to a closed database, and the error's dialog, parented
        # to the hidden window, kept the process running after the window had gone.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.MetaCall)
        self.settings.last_job = self.last_job()
        self.loras.save_to(self.settings)
        self.queue.close()
        self.store.close()

    def last_job(self) -> LastJob:
        """The prompt panel as ``settings.json`` keeps it: a field still waiting for the model's default at a
        first launch is saved as unset, not as the placeholder it shows; the user's model that could not be opened
        (a drive unplugged) and its fields in place of the model selected instead, till the user picks one
        (``ModelLibrary.kept_fields``): one start without the drive replaced them for good."""
        return replace(self.prompt.to_last_job(self.library.pending_fields()), **self.library.kept_fields())

    # ---- user actions --------------------------------------------------------------------------------------

    def generate(self) -> Job | None:
        """Queues a job with the prompt panel's settings and the LoRAs switched on (Generate); None, and said why,
        when there is no prompt, a field shows a value it does not take, the model is being removed, a LoRA
        switched on cannot be used, or two switched on are the same LoRA (a copy listed twice). None too while the
        LoRA copy check still reads their files: the click waits for the read (``HeldClicks``), then goes or is
        refused as a click then would be (``_release``)."""
        refused = self._refusal()
        loras: list[Any] | None = None
        if refused is None:
            loras, refused = self._job_loras(retry=True)
        if refused is not None:
            self.error.emit(refused)
            return None
        seed_before = self.prompt.seed
        self.prompt.next_seed()
        self.prompt.snap_size()  # a side typed off the grid and not yet left: the field shows what runs
        self.library.keep_panel()
        request = self.prompt.build_request()
        if loras is None:  # the copy check reads their files: the job is this request, once they are read
            self.held.hold(HeldClick(request, seed_before, self.loras.judge))
            return None
        return self._queue(request, loras)

    def _refusal(self) -> EngineError | None:
        """Why Generate queues no job, as far as the prompt panel and the model say (None: it may): no prompt, a
        field showing a value it does not take, the model being removed, dropped files still being read."""
        if self.dropped.reading:  # the form is about to be filled from them: the job would mix two images' settings
            return self.dropped.refusal()
        if not self.prompt.prompt.strip():
            return EngineError("user", "Type a prompt first.", "Describe the image you want to see.")
        typed = self.prompt.typed_error()  # "30" in Width ran the size the field held before, "0" in Images 1 image
        if typed is not None:
            return typed
        return self.library.removal_refuses(self.prompt.model)  # its job would run after the removal

    def _job_loras(self, retry: bool) -> tuple[list[Any] | None, EngineError | None]:
        """(the LoRAs switched on, as a job takes them, or None while the copy check reads their files; why no job
        may take them): a LoRA that cannot be used (on the selected model), then ``_copies_checked``'s. None and no
        refusal while an image's LoRAs are restored (``LoraHashSearch.restoring``): the rows on now are not the job's,
        the image's switch them off once its files are read (a click right after a drop was refused for a LoRA of
        the panel before it, gone or a copy of another, that the image did not use)."""
        if self.loras.hash_search.restoring:
            return None, None
        loras = self.loras.requests()  # each enabled file read again if it changed: a job on a gone one would fail
        unusable = self.loras.unusable()
        if unusable:  # said now, once per click, rather than by each queued job failing at its LoRA step
            return None, unusable_loras_error(unusable)
        return self._copies_checked(loras, retry)

    def _copies_checked(self, loras: list[Any], retry: bool) -> tuple[list[Any] | None, EngineError | None]:
        """(``loras``, or None while the copy check reads their files; why no job may take them): two that are the
        same LoRA as far as the files read tell (``LoraTwins.settle``; ``retry``: a file that could not be read
        tried again), one whose file the copy check could not read (a job would fail on it once its model
        loaded)."""
        twins = self.loras.twins.settle(retry)  # a copy of a LoRA on beside it: refused by the job, after a load
        if twins:
            return None, twin_loras_error(twins)
        if self.loras.reading:  # the copy check's read, or a file just added, on: the click waits (``HeldClicks``)
            return None, None
        unread = self.loras.twins.not_read  # tried again at each click (``retry``): a read that ended failing
        return (None, unread_loras_error(unread)) if unread else (loras, None)

    def _queue(self, request: GenerationRequest, loras: list[Any]) -> Job:
        """``request`` queued with ``loras``, its prompt added to the history."""
        request.loras = loras
        self.restore.say_job_model(request.model)
        job = self.queue.add(request)
        self.prompt_history.record_prompt(request.prompt, request.negative_prompt)
        self.queue.submit(job)
        return job

    def _release(self, held: list[HeldClick]) -> None:
        """The LoRA files read (``HeldClicks``): each Generate click that waited for them queued, with the LoRAs
        switched on now, or refused as a click now would be (its model being removed too), the refusals said once;
        the seed field as the refused clicks found it. Held again where the rows changed meanwhile and their files
        are to be read."""
        loras, shared = self._copies_checked(self.loras.requests(), retry=False)
        if loras is None and shared is None:
            for click in held:
                self.held.hold(click)
            return
        refused: list[tuple[HeldClick, EngineError]] = []
        for click in held:
            unusable = self.loras.unusable(click.judge)  # on its own model: another may be selected since
            why = (unusable_loras_error(unusable) if unusable else shared) or self.library.removal_refuses(
                click.request.model)  # fmt: skip
            if why is None:
                self._queue(click.request, loras or [])
            else:
                refused.append((click, why))
        if refused:
            self._seed_unmoved(held, [click for click, _why in refused])
            self.error.emit(refused_clicks_error([why for _click, why in refused]))

    def _seed_unmoved(self, held: list[HeldClick], refused: list[HeldClick]) -> None:
        """The seed field as if the ``refused`` clicks of ``held`` had never moved it (a click refused at once does
        not): the seed of the last one queued, else the one before the first click; left as it is where it shows
        another seed than the last click's (typed, or rolled, since)."""
        if self.prompt.seed != held[-1].request.seed:
            return
        queued = [click for click in held if all(click is not other for other in refused)]
        self.prompt.seed = queued[-1].request.seed if queued else held[0].seed_before

    def cancel(self) -> None:
        """Cancel (Esc): the running job stops at its next step, the queued ones go on (``JobQueue.cancel``), and so
        does a Generate waiting for the LoRA files, said; with none running, that Generate is dropped
        (``HeldClicks``)."""
        if not (self.queue.idle and self.held.drop()):
            self.queue.cancel()
            self.held.going_on()

    def cancel_all(self) -> None:
        """Cancel all (Shift+Esc): the running job stops, the queued ones never start (``JobQueue.cancel_all``), nor
        does a Generate waiting for the LoRA files."""
        self.held.drop()
        self.queue.cancel_all()

    def select_model(self, name: str, apply_defaults: bool = True, unchanged_since: dict[str, Any] | None = None
                     ) -> bool:  # fmt: skip
        """Makes ``name`` the model of the next jobs, or says why not (``ModelLibrary.select_model``)."""
        return self.library.select_model(name, apply_defaults, unchanged_since)

    def add_model(self, path: str | Path, select: bool = True) -> int:
        """Adds the model at ``path`` to the library (``ModelLibrary.add_model``); returns the add's number."""
        return self.library.add_model(path, select)

    def remove_model(self, name: str) -> None:
        """Takes the model ``name`` off the library's list, not its file (``ModelLibrary.remove_model``)."""
        self.library.remove_model(name)

    @property
    def entries(self) -> list[Any]:
        """The library's entries (``gpu.library.ModelEntry``), as the engine sent them last."""
        return self.library.entries

    @property
    def model_info(self) -> Any:
        """The selected model's facts (``ModelInfo``) as the engine described them; None until it has."""
        return self.library.model_info

    def add_loras(self, paths: list[str | Path]) -> None:
        """LoRA files the user picked, switched on, their headers read on a thread of their own (``LoraAdds``: a
        file on a hung network share froze the window), each row saying so meanwhile; once read, a file that is no
        readable LoRA is refused and named, and one
        listed already is said (its row is switched on: the pick seemed to do nothing), as the Models panel says of
        a model added again."""
        self.loras.adds.add(paths, self._lora_files_added)

    def _lora_files_added(self, picked: PickedFiles) -> None:
        """The files of ``add_loras`` read: those refused and those listed already said."""
        _added, refused, listed = picked
        if listed:
            one = len(listed) == 1
            self.status_message.emit(
                f"The LoRA{'' if one else 's'} {named_few([repr(e.label) for e in listed])} "
                f"{'is' if one else 'are'} already in the LoRA panel; {'it is' if one else 'they are'} switched on.")
        if refused:
            self.error.emit(EngineError("user", "\n\n".join(refused),
                                        "Use a FLUX.1 LoRA saved as .safetensors (download a damaged one again). "
                                        "The LoRA list is otherwise unchanged."))

    def add_lora_folder(self, folder: str | Path) -> None:
        """Every LoRA file of ``folder`` and its subfolders (switched off), read on a thread of its own while the
        window is in use (``LoraFolderScan.scan_folder``); what is wrong with the folder is said when it ends."""
        self.loras.folder_scan.scan_folder(folder)

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

    def save_image_as(self, record: ImageRecord, target: Path) -> None:
        """A byte-for-byte copy of the image's PNG (so its generation settings come along) written at ``target`` on a
        thread (``ImageSave``: a hung share froze the window for the whole copy); ``image_save.ended`` says how it
        ended, said to the user (an error names the file and the reason)."""
        self.image_save.save(self.gallery.path_of(record), Path(target))

    def copy_image(self, record: ImageRecord) -> None:
        """The image's pixels, for the clipboard (Ctrl+C in the gallery), decoded on a thread (``ImageCopy``:
        ``image_copy.ready`` hands them on); an error naming the file and why when its file is missing or is no
        image Qt can read, the clipboard then left as it was (a null image put there emptied it, what the user had
        copied before included, and nothing said so)."""
        self.image_copy.copy(self.gallery.path_of(record))

    def _copy_failed(self, source: Path, problem: CopyProblem) -> None:
        """The image in ``source`` could not be copied (``problem``: why, its picture too large for this machine, or
        (why, what to do) where the images folder is away, as ``ImageCopy`` found on its thread): said, with what to
        do."""
        if isinstance(problem, TooLarge):  # nothing wrong with its file: it goes by its file instead
            problem, remedy = problem.said("copy"), ("Drag the image from the gallery into the other program "
                                                     "instead: that hands over its file, not its pixels.")  # fmt: skip
        elif isinstance(problem, tuple):  # the images folder holding it is away
            problem, remedy = problem
        else:
            remedy = put_back("copy it again", damaged=True)
        self.error.emit(EngineError("user", f"The image {source} could not be copied: {problem}.",
                                    f"The clipboard was left as it was. {remedy}"))

    def reuse_settings(self, record: ImageRecord) -> None:
        """The gallery image ``record``'s settings in the prompt panel (``SettingsRestore.reuse_settings``)."""
        self.restore.reuse_settings(record)

    def forget_prompts(self, rows: list[int]) -> None:
        """History rows removed (``HistoryActions.forget_prompts``)."""
        self.prompt_history.forget_prompts(rows)

    def bring_back_prompts(self) -> None:
        """The last history rows removed back (``HistoryActions.bring_back_prompts``)."""
        self.prompt_history.bring_back_prompts()

    def clear_history(self) -> None:
        """Every prompt of the history forgotten (``HistoryActions.clear_history``)."""
        self.prompt_history.clear_history()

    def reuse_prompt(self, prompt: str, negative_prompt: str) -> None:
        """A history entry's prompts put in the prompt panel."""
        self.prompt_history.reuse_prompt(prompt, negative_prompt)

    def restore_from_files(self, paths: list[Path], web_addresses: list[str] | None = None) -> None:
        """Settings from dropped files (``SettingsRestore.restore_from_files``), read on a thread (``DroppedRead``):
        ``dropped.read`` hands over what was read from the file restored (None: none was) once the form is filled."""
        self.dropped.start(paths, web_addresses)

    # ---- worker signals ------------------------------------------------------------------------------------

    def _on_ready(self, status: EngineStatus) -> None:
        """The engine started: the library's list known, the model of an image restored meanwhile selected, then
        the model of the next jobs chosen (``ModelLibrary.select_at_start``)."""
        self.gpu, self.engine_started = status.gpu, True
        self.engine_ready.emit(status)
        self.library.on_engine_ready(status.entries)
        self.restore.restore_pending_model(self.queue.idle)  # an image restored while the engine started
        self.library.select_at_start(self.queue.idle)
        if self.queue.idle:
            self.job.status = "Ready"

    def _on_start_failed(self, error: EngineError) -> None:
        """The engine could not start (a torch that cannot be loaded): said, and said where "Starting the engine…"
        stayed for good. Each Generate tries it again, and says why it failed."""
        self.job.status = "The engine could not start"
        self.library.list_state.details = f"The engine could not start: {error.text}"
        self._on_failed(0, error)

    def _on_add_failed(self, request: int, error: EngineError) -> None:
        """The library refused the model of add ``request``: its asker is told (``ModelLibrary.on_add_failed``),
        the user by the dialog every failed request shows."""
        self.library.on_add_failed(request, error)
        self._on_failed(0, error)

    @property
    def prompt_meter(self) -> PromptMeter | None:
        """The selected model's prompt meter (``PromptMeasure.meter``)."""
        return self.prompt_measure.meter

    def _on_noted(self, job_id: int, note: str) -> None:
        """The engine made job ``job_id``'s images otherwise than asked (a guidance below 1 run as 1 on a model that
        takes none, a negative prompt unused at guidance 1, another base pipeline than the model records): said as a
        notice, since the prompt panel still shows what was asked. Each note says what ran and what to do itself: a
        hint common to all ("set the panel to the settings that ran") fitted the guidance alone. Each note once a
        session: a queue of jobs at the same guidance showed the same dialog after each job."""
        if note in self._notes_said:
            return
        self._notes_said.add(note)
        self.error.emit(EngineError("notice", f"{note[:1].upper()}{note[1:]}."))

    def _on_failed(self, job_id: int, error: EngineError) -> None:
        """A request to the engine failed: job ``job_id``, or a request of no job (0). Said, unless already."""
        job = self.queue.job(job_id)
        # A job on a model whose file went missing: _on_library said why once, as it fell back; each queued job
        # on it said the same in a dialog of its own.
        said = job is not None and self.library.is_gone(job.request.model)
        if job_id:
            self.queue.fail(job_id)
        else:  # a request of no job (a list read among them): a missing model picked awaits no answer now
            self.library.drop_recheck()
        if not said:
            self.error.emit(error)
