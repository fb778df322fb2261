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
