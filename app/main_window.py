"""Main window: prompt panel (left), gallery (centre), model library, quantization and history (right docks).

``run_app`` is what ``python main.py`` calls. The window is shown before anything heavy happens: torch and
the engine are imported on the engine thread once the event loop runs (``QTimer.singleShot(0, ...)``).

The settings are read, autosaved and saved on quit by ``app.settings_state.SettingsState``; the window tells it of
each change and gives it the window's geometry, dock layout and the gallery's splitter.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields
from itertools import pairwise
from pathlib import Path
from typing import cast

from PySide6.QtCore import QByteArray, QCoreApplication, QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QFocusEvent,
    QIcon,
    QKeySequence,
    QMoveEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStyle,
    QWidget,
)

from app.app_log import current_log_file, install_exception_hooks, log_startup_facts, start_file_log, stop_file_log
from app.bindings import bind
from app.controller import AppController
from app.data_dir import DataDir, resolve_data_dir
from app.engine_errors import EngineError, StartupRefused
from app.file_urls import file_url
from app.instance_handoff import HandoffServer, hand_over
from app.instance_lock import AlreadyRunning, lock_data_dir
from app.plain_text import plain_label
from app.quit_jobs import cancelled_on_quit, quit_question
from app.settings import LastJob, Settings
from app.settings_state import SettingsState
from app.thread_exit import exit_now_if_threads_run
from app.widgets.attention import ask_attention
from app.widgets.error_dialog import show_error, show_error_and_wait, show_fatal_error
from app.widgets.gallery_panel import GalleryPanel
from app.widgets.history_panel import HistoryPanel
from app.widgets.lora_panel import LoraPanel
from app.widgets.model_panel import ModelPanel
from app.widgets.prompt_panel import PromptPanel
from app.widgets.quantize_panel import QuantizePanel
from app.wording import counted
from gpu.output_folders import LinkLeadsNowhere, folder_problem
from gpu.paths import blank_data_dir, user_data_path

log = logging.getLogger(__name__)

APP_TITLE = "Nibble Studio"  # the window's title (with a running job's progress before it) and the app's name


class _DockScroll(QScrollArea):
    """A dock's panel, scrolled up and down when the dock is shorter than the panel's minimum, filling it otherwise.

    Not QScrollArea's widgetResizable: a panel with a word-wrapped label asks for its preferred height there
    (heightForWidth), so the prompt panel scrolled, Generate out of view, in a window it fitted at its minimum.
    And its size hint is the panel's, not QScrollArea's (capped at 24 lines), so docks start at their usual size.
    A field the keyboard brings the focus to is scrolled into view (``_FocusShown``).
    """

    def __init__(self, panel: QWidget) -> None:
        super().__init__()
        self.setWidget(panel)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # an empty Tab stop before each panel; its fields are stops
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the dock is never narrower
        panel.installEventFilter(self)  # its minimum changes with its content (a LoRA row added, longer text)
        _FocusShown.install()

    def sizeHint(self) -> QSize:
        return self.widget().sizeHint()

    def minimumSizeHint(self) -> QSize:
        # What the dock cannot show below is scrolled to, instead of making the window taller than the screen; a
        # few lines stay, so a dock is never squeezed to its title bar. Never narrower than the panel (and the
        # scroll bar beside it): sideways scrolling hid the right end of every row, Lock and the spin boxes'
        # arrows, in a window under 1000 px. The panels wrap their rows instead, so they need little width.
        panel = self.widget().minimumSizeHint()
        return QSize(panel.width() + self.verticalScrollBar().sizeHint().width(), min(panel.height(), 80))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the dock's minimum width is the panel's: the window's minimum follows
            self._fit()
        return super().eventFilter(watched, event)

    def _fit(self) -> None:
        panel = self.widget()
        panel.resize(self.viewport().size().expandedTo(panel.minimumSizeHint()))


# How a field gets the focus that its dock scrolls to: from the keyboard (Tab, Shift+Tab, a label's Alt+letter), or
# given by the app (a LoRA row's control after the row above is removed). Not the mouse's: a click or, with no button
# held, the wheel over a spin box or combo box (Qt's WheelFocus), where scrolling moved the field from under the
# pointer (84 px); nor the window's getting the focus back, or a menu's or popup's closing: the panel stays where
# the user scrolled it.
_SHOWN_REASONS = frozenset({Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason,
                            Qt.FocusReason.ShortcutFocusReason, Qt.FocusReason.OtherFocusReason})  # fmt: skip


class _FocusShown(QObject):
    """Scrolls a dock's panel to the field in it that gets the focus for one of ``_SHOWN_REASONS``. QScrollArea
    does so only when Tab moves within it: Tab from another dock (``MainWindow._tab_order``) put the focus in the
    prompt box scrolled out of sight at 800x600, and what was typed went there unseen.

    One, on the application, for every dock (``install``): the reason is in the focus event only, which goes to
    the field alone (``QApplication.focusChanged`` has none, and the mouse buttons held did not tell the wheel's
    focus from Tab's)."""

    @staticmethod
    def install() -> None:
        """Installs the one filter on the application, once."""
        app = cast(QApplication, QApplication.instance())
        if app.findChild(_FocusShown) is None:
            app.installEventFilter(_FocusShown(app))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.FocusIn and cast(QFocusEvent, event).reason() in _SHOWN_REASONS
                and isinstance(watched, QWidget)):  # fmt: skip
            # The docks found from the window down, in C++: walking up from the field wrapped Qt's own widgets
            # (viewports) in Python (``MainWindow._tab_order`` says why that is avoided).
            for scroll in watched.window().findChildren(_DockScroll):
                if scroll.widget().isAncestorOf(watched):
                    scroll.ensureWidgetVisible(watched)
        return False


class MainWindow(QMainWindow):
    def __init__(self, data: DataDir, settings: Settings | None = None) -> None:
        """``data``'s log file is the one this process writes to (``app.app_log.start_file_log``), if any."""
        lock = lock_data_dir(data)  # raises AlreadyRunning before anything in the folder is read or repaired
        super().__init__()
        self._lock = lock
        # At once: a second start made while this one reads its folder finds the socket, and is answered once the
        # event loop runs (if that is within its wait), not refused as if no app were there.
        self.handoff = HandoffServer(data.root, self)
        self.handoff.listen()
        try:
            self._build(data, settings)
        except BaseException:
            # A start refused (the database): no second start waits on this window, and the folder is free while
            # the refusal is said (the exception's traceback keeps this window, and so its lock, till then).
            self.handoff.close()
            self._lock.unlock()
            raise

    def _build(self, data: DataDir, settings: Settings | None) -> None:
        """The window's state, panels and docks, once the data folder is locked and the second-start socket made."""
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE)
        self.data = data
        self.log_file = current_log_file()
        self.settings_state = SettingsState(data.settings, settings, self)
        self.settings = self.settings_state.settings
        self.controller = AppController(data, self.settings)
        # Given once the controller is made: a window whose start-up it refused (a database that cannot be opened)
        # then holds no reference cycle through its settings, and goes at once, the data folder's lock with it.
        self.settings_state.gather_with(self._gather_settings)
        # What start-up repaired (a damaged settings file or database), and what its check of the images folder
        # could not do (``ReconcileReport.notices``): shown together once the window is up.
        self.notices = (self.settings_state.notices + self.controller.notices
                        + self.controller.reconcile_report.notices)  # fmt: skip
        self._closed = False
        self.settings_state.error.connect(self.show_error)
        self.error_dialog: QMessageBox | None = None
        self._shown_error: tuple[str, str] | None = None  # the words of ``error_dialog``
        self.controller.error.connect(self.show_error)
        self.controller.settings_restored.connect(self._restored)
        self.controller.status_message.connect(lambda text: self.statusBar().showMessage(text, 8000))

        self.prompt_panel = PromptPanel(self.controller)
        self.gallery_panel = GalleryPanel(self.controller)
        self.model_panel = ModelPanel(self.controller)
        self.quantize_panel = QuantizePanel(self.controller)
        self.history_panel = HistoryPanel(self.controller)
        self.lora_panel = LoraPanel(self.controller)
        self.setCentralWidget(self.gallery_panel)
        self.setDockNestingEnabled(True)
        self.prompt_dock = self._dock("Prompt", "promptDock", self.prompt_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.model_dock = self._dock("Models", "modelDock", self.model_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.quantize_dock = self._dock("Quantization", "quantizeDock", self.quantize_panel,
                                        Qt.DockWidgetArea.RightDockWidgetArea)
        self.history_dock = self._dock("Prompt history", "historyDock", self.history_panel,
                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.lora_dock = self._dock("LoRAs", "loraDock", self.lora_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._actions()
        self._tab_order()
        # The job's status line is the prompt panel's, beside Generate and Cancel. The status bar's right corner
        # repeated it ("Done: 2 images" twice); it shows it only while the prompt panel is out of view (closed
        # from its title bar or the View menu, or a tab behind another dock), so a running job is never silent.
        self.status_label = plain_label()  # the prompt panel's status line, as it shows it
        self.status_label.setObjectName("jobStatus")
        self.statusBar().addPermanentWidget(self.status_label)
        bind(self.controller.job, "status", self.status_label)
        self.prompt_dock.visibilityChanged.connect(lambda shown: self.status_label.setVisible(not shown))
        # The new images of the folder are imported once the window is up (``start``); it says how far, in the
        # corner: a passing message would be replaced by the next one, as a notice would be by it.
        self.import_label = QLabel()
        self.import_label.setObjectName("importStatus")
        self.statusBar().addPermanentWidget(self.import_label)
        folder_import = self.controller.folder_import
        bind(folder_import, "status", self.import_label)
        self.import_label.setVisible(bool(folder_import.status))
        folder_import.status_changed.connect(self._show_import_status)
        folder_import.notice.connect(self.show_error)  # the old trash of another drive, gathered after start-up
        if missing := self.controller.reconcile_report.missing:
            self.statusBar().showMessage(f"Gallery check: {counted(missing, 'missing file')} flagged.", 15000)
        self._first_geometry()
        self._restore_layout()
        # A prompt dock closed in the last session is restored closed: it never becomes visible, so no
        # visibilityChanged says so.
        self.status_label.setVisible(not self.prompt_dock.isVisibleTo(self))
        self._watch_settings()
        self.handoff.asked.connect(self._asked_by_second_start)
        self.controller.job.busy_changed.connect(self._jobs_ended)
        job = self.controller.job
        for signal in (job.busy_changed, job.step_changed, job.total_steps_changed, job.queue_changed):
            signal.connect(self._title_progress)

    def _watch_settings(self) -> None:
        """Each change of what the settings are made of restarts the autosave: the prompt panel's fields (those
        ``LastJob`` keeps), the LoRA list and its rows, a job started or ended (a fresh seed), the docks' places and
        sizes, the gallery's splitter."""
        prompt = self.controller.prompt
        for name in (f.name for f in fields(LastJob)):
            getattr(prompt, f"{name}_changed").connect(self.settings_changed)
        for signal in (self.controller.loras.changed, self.controller.loras.edited, self.controller.job.busy_changed):
            signal.connect(self.settings_changed)
        for dock in (self.prompt_dock, self.model_dock, self.quantize_dock, self.history_dock, self.lora_dock):
            for signal in (dock.dockLocationChanged, dock.topLevelChanged, dock.visibilityChanged):
                signal.connect(self.settings_changed)
            dock.installEventFilter(self)  # a dock resized by dragging its edge: no signal says so (``eventFilter``)
        self.gallery_panel.splitter.splitterMoved.connect(self.settings_changed)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A dock resized (its edge dragged, or the window resized) restarts the autosave: the layout is kept."""
        if event.type() == QEvent.Type.Resize and isinstance(watched, QDockWidget):
            self.settings_changed()
        return super().eventFilter(watched, event)

    def settings_changed(self) -> None:
        """Saves the settings soon after the last of a run of changes (``SettingsState.changed``)."""
        self.settings_state.changed()

    def _show_import_status(self, text: str) -> None:
        self.import_label.setVisible(bool(text))

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() needs stable object names
        # Scrolled, not squeezed: the docks' contents together would otherwise set a minimum window size larger
        # than a 1366x768 laptop screen (the window could not be made smaller, its bottom off the screen), and
        # a dock squeezed to its minimum clipped its text. A dock smaller than its panel scrolls instead.
        scroll = _DockScroll(widget)
        scroll.setObjectName(f"{name}Scroll")
        dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        return dock

    def _tab_order(self) -> None:
        """Tab goes through the panels as they are laid out: left column (prompt, LoRAs), centre (gallery), right
        column (models, quantization, history). Qt's own order is the order the widgets were made in, which
        went from the prompt to the right column and only then to the LoRAs and the gallery.

        The stops are named, not found by walking the focus chain: that wraps every Qt-made widget (scroll
        bars, dock buttons) in Python, and PySide later handed out those dead wrappers for new widgets at the
        same address ("already deleted")."""
        prompt, lora, gallery = self.prompt_panel, self.lora_panel, self.gallery_panel
        models, history = self.model_panel, self.history_panel
        chain: list[QWidget] = [
            prompt.prompt_edit, prompt.negative_edit, prompt.seed_edit, prompt.seed_random, prompt.seed_lock,
            prompt.steps_spin, prompt.guidance_spin, prompt.size_preset, prompt.width_spin, prompt.height_spin,
            prompt.batch_spin, prompt.generate_button, prompt.cancel_button,
            *lora.tab_chain(),  # the LoRA panel keeps this order as its rows change
            gallery.search, gallery.favorites_only, gallery.view, gallery.metadata, *gallery.buttons,
            models.list, models.add_folder_button, models.add_file_button, models.remove_button,
            self.quantize_panel.open_button,
            history.search, history.remove_button, history.clear_button, history.view,
        ]
        for first, second in pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _actions(self) -> None:
        generate = QAction("Generate", self)
        generate.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        generate.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        generate.setAutoRepeat(False)  # keys held a moment too long: the repeats Qt sends queued a job each
        generate.triggered.connect(self.controller.generate)
        cancel = QAction("Cancel", self)
        cancel.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        # A new press only: the repeats of an Esc held a moment too long in the viewer or a dialog, which close on
        # its press, came here once the window had the keyboard back, and cancelled the running job.
        cancel.setAutoRepeat(False)
        cancel.triggered.connect(self.controller.cancel)
        cancel.setStatusTip("Stop the running job at its next step; the queued jobs go on")
        cancel_all = QAction("Cancel all", self)
        cancel_all.setAutoRepeat(False)
        cancel_all.setShortcut(QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_Escape))
        cancel_all.triggered.connect(self.controller.cancel_all)
        cancel_all.setStatusTip("Stop the running job and every queued one")
        self.addActions([generate, cancel, cancel_all])
        self.generate_action, self.cancel_action, self.cancel_all_action = generate, cancel, cancel_all
        view = self.menuBar().addMenu("&View")
        for dock in (self.prompt_dock, self.model_dock, self.quantize_dock, self.history_dock, self.lora_dock):
            view.addAction(dock.toggleViewAction())
        run = self.menuBar().addMenu("&Generate")
        run.addActions([generate, cancel, cancel_all])
        help_menu = self.menuBar().addMenu("&Help")
        self.log_folder_action = help_menu.addAction("Open log folder", self.open_log_folder)
        # The path itself, for a user asked "send us the log" (and why there is none when it could not be opened).
        where = (f"The log file is {self.log_file}" if self.log_file
                 else "No log file could be opened in the data folder")
        self.log_folder_action.setStatusTip(where)
        self.log_folder_action.setToolTip(where)
        self.log_folder_action.setEnabled(self.log_file is not None)
        help_menu.addAction("Open data folder", lambda: self._open_folder(self.data.root))

    def open_log_folder(self) -> None:
        if self.log_file is not None:
            self._open_folder(self.log_file.parent)

    def _open_folder(self, folder: Path) -> None:
        QDesktopServices.openUrl(file_url(folder))

    def _first_geometry(self) -> None:
        """The window's size and place where no saved geometry is restored (the first start, a lost or damaged
        one): 1280x800, at most 90% of what the screen leaves free (the panels and the taskbar), centred on it. At
        1280x800 on a 1366x768 laptop, the status bar and the gallery's bottom rows of buttons were below the
        screen's edge."""
        area = self.screen().availableGeometry()
        size = QSize(1280, 800).boundedTo(area.size() * 0.9)
        self.setGeometry(QStyle.alignedRect(Qt.LayoutDirection.LeftToRight, Qt.AlignmentFlag.AlignCenter, size, area))

    def _restore_layout(self) -> None:
        """The window's geometry, its docks and the gallery's splitter as the settings keep them. A value that is
        no saved state (a hand-edited file) is ignored by Qt: that part starts as it is made."""
        settings = self.settings
        for restore, saved in ((self.restoreGeometry, settings.window_geometry),
                               (self.restoreState, settings.window_state),
                               (self.gallery_panel.splitter.restoreState, settings.gallery_splitter)):  # fmt: skip
            if saved:
                restore(QByteArray.fromBase64(saved.encode()))

    def start(self) -> None:
        """Heavy start-up after the window is visible."""
        self._show_notices()
        self.controller.folder_import.start()
        self.controller.folder_watch.start()
        self.controller.start_engine()

    def _show_notices(self) -> None:
        if not self.notices:
            return
        for notice in self.notices:
            log.warning("%s %s", notice.message, notice.hint)
        self.statusBar().showMessage(self.notices[0].message, 30000)
        self.show_error(EngineError("notice", "\n\n".join(n.message for n in self.notices),
                                    " ".join(n.hint for n in self.notices if n.hint)))

    def show_error(self, error: EngineError) -> None:
        """The dialog, and the same words in the log (a user's report then has what they saw, in order). Once the
        window is closed, the log alone: a dialog parented to the hidden window kept the app running, unseen and
        with its data folder unlocked, since its closing is not the last window's."""
        level = logging.INFO if error.kind == "notice" else logging.WARNING
        if self._closed:
            log.log(level, "not shown, the window is closed (%s): %s %s", error.kind, error.message, error.hint)
            return
        shown = self.error_dialog
        if shown is not None and shown.isVisible() and self._shown_error == (error.message, error.hint):
            # The same words again (each queued job failing on one LoRA): one dialog, not one stacked per job.
            log.log(level, "not shown again, its dialog still open (%s): %s", error.kind, error.message)
            return
        log.log(level, "shown to the user (%s): %s %s", error.kind, error.message, error.hint)
        self._shown_error = (error.message, error.hint)
        self.error_dialog = show_error(self, error, self.log_file)

    def _title_progress(self, *_: object) -> None:
        """"[45%] Nibble Studio" while jobs run: the taskbar entry of the window, minimized or behind others, says
        how far the queued jobs are (``JobState.percent``)."""
        percent = self.controller.job.percent()
        self.setWindowTitle(APP_TITLE if percent is None else f"[{percent}%] {APP_TITLE}")

    def _jobs_ended(self, busy: bool) -> None:
        """The last job queued ended (its images saved, or it failed): flagged in the taskbar where the user works in
        another program meanwhile."""
        if not busy and not self._closed:
            ask_attention(self)

    def _asked_by_second_start(self, files: list[Path]) -> None:
        """Nibble Studio started again on this data folder (``app.instance_handoff``): this window comes forward, and
        the files it was started with are taken as images dropped on the prompt panel are. As the window closes
        (the start was told they were taken just before): taken all the same, for the settings it saves, with
        neither the window brought forward nor a dialog (``show_error`` logs once the window is closed)."""
        if not self._closed:
            self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized | Qt.WindowState.WindowActive)
            self.raise_()
            self.activateWindow()
            # A window manager that keeps another program's start from taking the focus: the taskbar entry says so.
            ask_attention(self)
        if files:
            self.controller.restore_from_files(files)

    def _restored(self, names: list[str]) -> None:
        self.statusBar().showMessage(f"Restored: {', '.join(names) or 'nothing'}", 8000)

    def moveEvent(self, event: QMoveEvent) -> None:
        super().moveEvent(event)
        self.settings_changed()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.settings_changed()

    def _gather_settings(self, settings: Settings) -> None:
        """Puts in ``settings`` the window's geometry and dock layout, the gallery's splitter, the prompt panel and
        the LoRA list as they are now (before each save)."""
        settings.window_geometry, settings.window_state, settings.gallery_splitter = (
            bytes(state.toBase64()).decode()
            for state in (self.saveGeometry(), self.saveState(), self.gallery_panel.splitter.saveState()))
        settings.last_job = self.controller.last_job()
        self.controller.loras.save_to(settings)

    def _confirm_cancel_jobs(self) -> bool:
        """Whether the quit may cancel the jobs running or queued, a Generate waiting for the LoRA files among them:
        asked ("Quit and cancel them?") when there are any, which went silently, with the images they were to make;
        the jobs cancelled then are logged. True when there are none (cancelled already, or only one past its last
        step, whose image comes all the same)."""
        # What the engine has said of its jobs already is taken in first (the queue's own queued calls only: the
        # image import's handed-over batch must stay unrun): a job it ended, or whose last step it finished, is not
        # asked about as if it still had work to lose.
        QCoreApplication.sendPostedEvents(self.controller.queue, QEvent.Type.MetaCall)
        jobs, held = self.controller.queue.unfinished, self.controller.held.requests  # held: Generate clicks waiting
        if not (jobs or held):  # for the LoRA files, jobs once they are read
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Quit Nibble Studio?", quit_question(jobs, held),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
            return False
        # Read again: a job may have ended, or a click been queued, while the question was open
        jobs, held = self.controller.queue.unfinished, self.controller.held.requests
        if jobs or held:
            log.warning("%s", cancelled_on_quit(jobs, held))
        return True

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            return super().closeEvent(event)
        wizard = self.quantize_panel.wizard  # a wizard closed earlier was asked then, or had nothing running
        if wizard is not None and not wizard.confirm_stop():
            event.ignore()  # "No": the quantize run goes on, and the app with it
            return
        if not self._confirm_cancel_jobs():
            event.ignore()  # "No": the jobs go on, and the app with them
            return
        self._closed = True
        self.controller.viewer.close()  # its window too: none left open over the desktop
        # Files a second start was told were taken come in now (their settings saved below, what goes wrong with
        # them logged); from here on such a start finds the folder locked or free, not a closing window.
        self.handoff.close()
        self.settings_state.stop()  # saved below, once
        self.quantize_panel.shutdown()
        self.controller.folder_watch.stop()  # no look, nor import, begins after
        self.controller.folder_import.stop()  # before the database closes; the rest is imported at the next start
        self.controller.shutdown()
        try:
            # Raised out of closeEvent, a failed save was a traceback in the log and nothing on screen, the lock
            # left behind, and the session's prompt and LoRA list silently gone: said before the window goes.
            if (failed := self.settings_state.save_last()) is not None:
                show_error_and_wait(self, failed, self.log_file)
        finally:
            self._lock.unlock()
        super().closeEvent(event)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nibble-studio")
    # a str, read by run_app as main.py reads it (gpu.paths.named_data_dir): Path("") is the current folder
    parser.add_argument("--data-dir", default=None,
                        help="keep gallery, history and settings here (default: your user data folder)")
    args, _ = parser.parse_known_args(argv[1:])  # Qt options (-platform, -style) pass through
    return args


def _application(argv: list[str]) -> QApplication:
    """The app's QApplication (made if there is none yet), named, with its icon and theme: for its first dialog too."""
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName(APP_TITLE)
    from gpu.paths import resources_dir

    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "nibble-studio.png")))
    from app.theme import apply_theme

    apply_theme(app)
    return app


def show_start_refused(argv: list[str], message: str, hint: str) -> None:
    """Says in a dialog why the app does not start, where the command line refused what it was given before the app
    could begin (a --data-dir that names no folder) and no terminal shows what it printed (``main.windowed_app``)."""
    _application(argv)
    show_fatal_error(EngineError("user", message, hint))


def _data_folder_refused(exc: OSError) -> EngineError:
    """Why the data folder ``resolve_data_dir`` refused with ``exc`` cannot be used, naming the folder asked for
    (the one it exported, absolute; else the default): ``exc.filename`` may be a folder above it (a link that leads
    nowhere) or inside it, which ``folder_problem`` names in its place. A link's own hint where one leads nowhere."""
    folder = user_data_path()
    hint = exc.hint if isinstance(exc, LinkLeadsNowhere) else "start Nibble Studio with a writable data folder " \
        "(--data-dir PATH)"  # fmt: skip
    return EngineError("user", f"The data folder {folder} cannot be used: {folder_problem(folder, exc)}", hint)


def _window_or_handed_over(data: DataDir, opened: list[Path]) -> MainWindow | None:
    """The window on ``data``; None where the app open on its folder took the files ``opened`` instead
    (``app.instance_handoff``). Raises ``StartupRefused`` as ``MainWindow`` does."""
    try:
        return MainWindow(data)
    except AlreadyRunning as exc:
        if hand_over(exc.folder, opened):
            log.info("handed over to the Nibble Studio open on %s: %d file(s)", exc.folder, len(opened))
            return None
    return MainWindow(data)  # the app open did not answer: it may have been quitting, and its lock be free now


def run_app(argv: list[str], data_dir: str | os.PathLike[str] | None = None, open_files: list[str] | None = None
            ) -> int:  # fmt: skip
    """The desktop app; returns its exit code. Logs go to stderr when there is one (not in the windowed
    executable) and to the data folder's log file (``app.app_log``) when it can be opened. ``data_dir`` (else
    ``--data-dir`` in ``argv``) is read as main.py reads it (``gpu.paths.named_data_dir``): a blank one is refused in
    a dialog (exit 2), not taken for the current folder. ``open_files``: the files the app was started with (images
    dropped on the executable, "Open with"), handled once the window is up as images dropped on the prompt panel
    are: the settings of the first that has some restored, or why none were said. Where an app has the data folder
    open already, it is handed the files (``app.instance_handoff``) and this one returns 0, no window of its own."""
    if sys.stderr is not None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    else:
        logging.getLogger().setLevel(logging.INFO)
    install_exception_hooks()
    if data_dir is None:
        data_dir = parse_args(argv).data_dir
    if data_dir is not None and (blank := blank_data_dir(os.fspath(data_dir))) is not None:
        log.error("cannot start: %s (%s)", *blank)
        show_start_refused(argv, *blank)
        return 2
    app = _application(argv)
    try:
        data = resolve_data_dir(data_dir)
    except OSError as exc:  # the data folder cannot be created or written (read-only place, full disk)
        log.error("cannot start: %s", exc)
        show_fatal_error(_data_folder_refused(exc))
        return 1
    start_file_log(data.root)  # before the lock: a second instance's "already running" is logged too
    log_startup_facts(data.root)
    opened = [Path(name).absolute() for name in open_files or []]  # a relative name is the current folder's
    try:
        try:
            window = _window_or_handed_over(data, opened)
        except StartupRefused as exc:  # the database, or another app on the folder: a dialog, no traceback
            log.error("cannot start: %s", exc)
            refused = exc.with_files(opened)
            show_fatal_error(refused, current_log_file())
            return 1
        if window is None:
            return 0
        window.show()
        QTimer.singleShot(0, window.start)
        if opened:
            QTimer.singleShot(0, lambda: window.controller.restore_from_files(opened))
        code = app.exec()
        log.info("Nibble Studio exits (code %d)", code)
        exit_now_if_threads_run(code)
        return code
    finally:  # closed when run_app returns (tests call it in-process, the next start opens its own)
        stop_file_log()


if __name__ == "__main__":
    sys.exit(run_app(sys.argv))
