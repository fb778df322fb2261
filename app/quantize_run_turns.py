"""The quantize wizard's run and its turn (``QuantizeRunTurns``): the output named on a thread, once no earlier
wizard's run (closed, still stopping) nor a naming cancelled while it ran holds a name it may take, then the job
handed to the worker thread (``handed``); Cancel at each of these steps. It reads and writes only run states: the
wizard's own (``run_state``) and those of the wizards opened before it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QObject, Signal

from app.background import Lookup, Lookups
from app.controller import AppController
from app.engine_errors import classify
from app.quantize_outputs import Named, name_run_output, output_name
from app.quantize_run_state import QuantizeRunState
from app.quantize_source import QuantizeSource, earlier_output_stems, output_stem
from app.quantize_worker import QuantizeJob, release_claim, run_error
from gpu.errors import UserError

if TYPE_CHECKING:
    from gpu.quantizer import QuantizeConfig

# Said while a run waits for a closed wizard's run to stop (it holds the output's name, or the GPU)
WAITING_FOR_CLOSED = "Waiting for the quantize run of the wizard you closed to stop…"


class QuantizeRunTurns(QObject):
    """Starts a wizard's run, names its output and waits for its turn behind the runs of earlier wizards; the run's
    job, its waits and how it ended are ``run_state``'s. What it needs of the wizard comes as callables: the
    settings its pages hold (``config``), the models folder, the keeping of an earlier run's result
    (``keep_result``) and the comparison's steps (``compare_steps``, few in tests)."""

    handed = Signal(object)  # the job, queued to the worker thread
    cancel_taken = Signal()  # Cancel pressed (or the run let go of before it worked): the run page greys Cancel

    def __init__(self, controller: AppController, run_state: QuantizeRunState, source_state: QuantizeSource,
                 earlier: Sequence[QuantizeRunState], *, config: Callable[[], QuantizeConfig],
                 models_folder: Callable[[], Path], keep_result: Callable[[], None],
                 compare_steps: Callable[[], int | None], parent: QObject | None = None) -> None:  # fmt: skip
        """``earlier``: the runs of the wizards opened before this one, which a run here waits for."""
        super().__init__(parent)
        self.controller = controller
        self.run_state = run_state
        self.source_state = source_state
        self._earlier = list(earlier)
        self.config = config
        self.models_folder = models_folder
        self.keep_result = keep_result
        self.compare_steps = compare_steps
        # The models folder is looked at on threads (``Lookups``): the output name of a run (``_naming``)
        self.lookups = Lookups("Quantize", self)
        self.lookups.ended.connect(self._naming_lookup_ended)
        self._naming: Lookup | None = None
        self._name: Callable[[], None] | None = None  # the naming of a run that waits for an earlier wizard's
        for run in self._earlier:
            run.run_ended.connect(self._start_when_free)
            run.naming_let_go.connect(self._start_when_free)
            run.destroyed.connect(self._earlier_gone)

    def _earlier_gone(self, _run: QObject) -> None:
        """An earlier wizard was let go of (closed, its run ended for good): its run is no longer looked at."""
        self._earlier = [run for run in self._earlier if shiboken6.isValid(run)]

    def start(self) -> None:
        """Starts a run of the chosen source and settings (the run page shown): its output is named on a thread,
        once no earlier run or dropped naming holds a name it may take."""
        state = self.source_state
        source = state.source
        config = self.config()
        entry = self.controller.library.entry(source)
        folder_path = Path(entry.path) if entry is not None else Path(source)
        stem = output_name(output_stem(source, folder_path), config)
        earlier = [output_name(s, config) for s in earlier_output_stems(source, folder_path)]
        # A run after Back: nothing of the earlier run may pass for this one's (a cancelled run would offer
        # the earlier model as "complete", and the result page would show both runs' images). The earlier
        # model goes into the library first: forgotten here, it stayed unlisted in the hidden models folder.
        self.keep_result()
        self.run_state.start_over()
        try:
            state.recheck_file()
        except UserError as err:
            self.run_state.failed_with(classify(err))
            return
        self.run_state.set_running(True)
        folder = self.models_folder()

        # As the run was started: the source page may change while the name is chosen (``_named``).
        compare_original = not state.is_file

        name = functools.partial(name_run_output, folder, stem, source, config, compare_original, earlier)  # a thread
        self._name = functools.partial(self._choose_name, source, name)
        if self._name_held():
            # Named once that run stopped: it holds its name until then, and a run this one would resume (the
            # closed run's, reopened to go on with it) is skipped while held; named now, this run started over
            # under the next free name, its parts folder unsaid.
            self.run_state.waiting = True
            self.run_state.log(
                WAITING_FOR_CLOSED if self._earlier_name_held() else
                "Waiting for the stopped run to finish choosing its output's name…")  # fmt: skip
            return
        self._start_when_free()

    def _earlier_name_held(self) -> bool:
        """Whether an earlier wizard's run is running, or a naming it dropped still holds its name."""
        return any(run.holds_name() for run in self._earlier)

    def _name_held(self) -> bool:
        """Whether a name this wizard's run may take (or resume) is held by a run or a dropped naming that ends
        soon: an earlier wizard's (``_earlier_name_held``), or this wizard's own cancelled naming (``dropped``)."""
        return self.run_state.dropped is not None or self._earlier_name_held()

    def _choose_name(self, source: str, name: Callable[[], Named]) -> None:
        """Chooses and claims the run's output name on a thread (``name``); ``_named`` takes it from there."""
        self.run_state.log(f"Quantizing {source}: choosing the output's name…")
        self._naming = self.lookups.start("choosing the output's name", name)

    def _named(self, lookup: Lookup) -> None:
        """The run's output is named (``start``): the run goes to the worker, or waits for an earlier wizard's."""
        if lookup.error is not None:  # the models folder cannot be listed (a name is taken only when it can)
            # or the chosen name's lock not taken there (its lock file's place is a folder): said as the run's
            # write errors are, with the remedy the wizard has (no --out, no other folder)
            self.run_state.failed_with(run_error(lookup.error, self.models_folder())[0], settings_can_fix=False)
            return
        named: Named = lookup.result
        run = self.run_state
        run.out_path, source = named.claim.target, named.source
        # The claim goes with the job: the worker releases it as the run ends, ``cancel`` if it never starts
        run.job = QuantizeJob(source, run.out_path, named.config, compare_steps=self.compare_steps(),
                              compare_original=named.compare_original, claim=named.claim)  # fmt: skip
        for note in named.notes:
            self.run_state.log(note)
        self.run_state.log(f"Quantizing {source} → {run.out_path.name}")
        if any(earlier.running for earlier in self._earlier):
            self.run_state.waiting = True
            self.run_state.log(WAITING_FOR_CLOSED)
            return
        self._hand_over()

    def _start_when_free(self) -> None:
        """Names the run ``start`` began, or hands the named one over, once no earlier wizard's run is running
        and no dropped naming holds a name (``_name_held``)."""
        if self._name_held():
            return  # another earlier run still stopping, or a dropped naming still holding its name
        if self._name is not None:
            name, self._name = self._name, None
            self.run_state.waiting = False
            name()
        elif self.run_state.waiting:  # not cancelled while waiting, nor started already
            self._hand_over()

    def _hand_over(self) -> None:
        """The named run's job goes to the worker thread (``handed``)."""
        job = self.run_state.job
        assert job is not None
        self.run_state.waiting = False
        if job.config.base:
            self.run_state.log(f"Text encoders, tokenizers and calibration prompts from {job.config.base}")
        self.handed.emit(job)

    def cancel(self) -> None:
        """Cancels the run: a naming under way is dropped, a waiting run let go of, a working one told to stop."""
        if self._naming is not None or self._name is not None:  # not named yet: dropped, nothing was started
            # Said cancelled at once, but a naming under way still claims a name: held until it ended (``dropped``)
            if self._naming is not None:
                assert self.run_state.dropped is None  # a run is named only once the earlier dropped naming ended
                self.run_state.dropped = self._naming
            self._naming = self._name = None
            self.run_state.waiting = False
            self.cancel_taken.emit()
            self.run_state.cancelled()
            return
        job = self.run_state.job
        if job is None or not self.run_state.running:
            return  # nothing is running: a finished or failed run's page keeps its words
        job.cancel.set()
        self.cancel_taken.emit()  # pressed: the run stops at its next check
        if self.run_state.waiting:  # never handed to the worker: nothing to stop there, and its name is free again
            self.run_state.waiting = False
            release_claim(job.claim)
            self.run_state.cancelled()
            return
        self.run_state.log("Stopping…")

    def _naming_lookup_ended(self, lookup: Lookup) -> None:
        """Takes ``lookup`` (``lookups.ended``) when it is the run's naming, or a naming dropped by a cancel."""
        if lookup is self._naming:
            self._naming = None
            self._named(lookup)
        elif lookup is self.run_state.dropped:  # a naming cancelled while it ran: its name is free again
            self.run_state.dropped = None
            if isinstance(lookup.result, Named):
                release_claim(lookup.result.claim)
            self.run_state.naming_let_go.emit()  # later wizards' runs that wait for it
            self._start_when_free()  # this wizard's next run, if one waits for it
