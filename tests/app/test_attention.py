"""Work that ends while the user is in another program (a job's images, a quantize run of an hour) flags its window
in the taskbar: nothing said so, and the user had to keep looking."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QWidget


def _alerts(monkeypatch) -> list:
    alerted: list = []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda widget, msec=0: alerted.append(widget)))
    return alerted


def _activate(qtbot, widget: QWidget) -> None:
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)


def test_the_window_is_flagged_when_its_jobs_end_while_the_user_is_elsewhere(qtbot, window, monkeypatch):
    alerted = _alerts(monkeypatch)
    elsewhere = QWidget()  # another program's window, in front
    qtbot.addWidget(elsewhere)
    elsewhere.show()
    _activate(qtbot, elsewhere)
    controller = window.controller
    controller.prompt.prompt, controller.prompt.width, controller.prompt.height = "a red circle", 64, 64
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert alerted == [window]
    _activate(qtbot, window)  # the user watching it: not flagged
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert alerted == [window]


def test_the_window_title_says_how_far_the_job_is(qtbot, window):
    """The taskbar entry of a window minimized or behind others said nothing of the job running: its title now does,
    over the whole batch, and is the app's name again once it ended."""
    titles: list[str] = []
    window.windowTitleChanged.connect(titles.append)
    controller = window.controller
    controller.prompt.prompt, controller.prompt.width, controller.prompt.height = "a red circle", 64, 64
    controller.prompt.steps, controller.prompt.batch_count = 2, 2
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    shown = [t for t in titles if t.startswith("[")]
    assert shown[-1] == "[100%] Nibble Studio" and "[50%] Nibble Studio" in shown, titles  # step 2 of 4
    assert shown == sorted(shown, key=lambda t: int(t[1:t.index("%")])), titles  # never back
    assert window.windowTitle() == "Nibble Studio"
