"""Save as… with a name typed without ".png": the file of the real name is never replaced unasked."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QMessageBox

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, saved_as, window_without_engine


def _shown(kind: type) -> QFileDialog | QMessageBox | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()), None)


def _type_in_save_dialog(folder: Path, typed: str, answer: QMessageBox.StandardButton, asked: list[str]) -> None:
    """Once the Save dialog shows: ``typed`` typed as the name in ``folder`` and Save clicked; a question whether
    to replace a file is noted in ``asked`` and answered ``answer``. Left open after a "No", the dialog is
    cancelled, as the user would."""

    def save() -> None:
        dialog = _shown(QFileDialog)
        if dialog is None:
            QTimer.singleShot(50, save)
            return
        dialog.setDirectory(str(folder))
        dialog.findChild(QLineEdit, "fileNameEdit").setText(typed)
        QTimer.singleShot(50, reply)
        dialog.accept()  # Save clicked: a question before replacing a file is asked in here (a modal box)
        if dialog.isVisible():
            dialog.reject()

    def reply() -> None:
        box = _shown(QMessageBox)
        if box is None:
            if _shown(QFileDialog) is not None:  # else the dialog closed without a question
                QTimer.singleShot(50, reply)
            return
        asked.append(box.text())
        box.button(answer).click()

    QTimer.singleShot(50, save)


def test_the_save_dialog_asks_before_replacing_the_png_of_a_name_typed_without_it(qtbot, data_root, tmp_path):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    panel, controller = window.gallery_panel, window.controller
    saved: list[str] = []
    controller.status_message.connect(saved.append)
    mine = tmp_path / "portrait.png"
    Image.new("RGB", (8, 8), (0, 255, 0)).save(mine)  # a picture the user already had there
    before = mine.read_bytes()
    panel.select_row(0)

    asked: list[str] = []
    _type_in_save_dialog(tmp_path, "portrait", QMessageBox.StandardButton.No, asked)
    panel.save_button.click()
    # was: no question (no file is called "portrait"), then portrait.png written over and "saved" said
    assert len(asked) == 1 and "portrait.png already exists" in asked[0]
    assert mine.read_bytes() == before and saved == []

    _type_in_save_dialog(tmp_path, "portrait", QMessageBox.StandardButton.Yes, asked)
    with qtbot.waitSignal(controller.image_save.ended, timeout=30000):  # copied on a thread
        panel.save_button.click()
    source = controller.gallery.path_of(controller.gallery.record(0))
    assert len(asked) == 2 and mine.read_bytes() == source.read_bytes()  # the user said to replace it
    assert saved == [f"Saving the image {source.name} as {mine}…", f"The image {source.name} was saved as {mine}."]


def test_a_name_given_without_png_never_replaces_the_file_of_that_name(qtbot, data_root, tmp_path):
    """Whatever dialog gave the name (GTK's, the desktop portal's): ".png" added by the app was asked about by
    none."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    controller = window.controller
    errors, saved = [], []
    controller.error.connect(errors.append)
    controller.status_message.connect(saved.append)
    mine = tmp_path / "portrait.png"
    mine.write_bytes(b"the user's picture")
    record = controller.gallery.record(0)

    assert saved_as(qtbot, controller, record, tmp_path / "portrait") is None  # was: written over, "saved" said
    assert mine.read_bytes() == b"the user's picture" and saved == [f"Saving the image 0.png as {mine}…"]
    assert len(errors) == 1 and str(mine) in errors[0].message and "already there" in errors[0].message
    assert "portrait.png itself" in errors[0].hint

    # a free name still gets ".png", and the name the dialog gave (asked about) is written
    assert saved_as(qtbot, controller, record, tmp_path / "fox") == tmp_path / "fox.png"
    assert saved_as(qtbot, controller, record, mine) == mine and mine.read_bytes() != b"the user's picture"
    assert len(errors) == 1


def test_a_folder_of_the_name_is_said_to_be_a_folder_with_or_without_png_typed(qtbot, data_root, tmp_path):
    """With a folder named portrait.png where the user saves, "portrait" typed was refused as a file already there,
    with the hint to pick portrait.png itself to replace it; doing so was then refused as a folder. Both now say
    it is a folder, and the hint offers what can be done: another name, or saving into that folder."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    controller = window.controller
    errors = []
    controller.error.connect(errors.append)
    folder = tmp_path / "portrait.png"
    folder.mkdir()
    record = controller.gallery.record(0)

    assert saved_as(qtbot, controller, record, tmp_path / "portrait") is None
    assert saved_as(qtbot, controller, record, folder) is None
    source = controller.gallery.path_of(record)
    assert [(e.message, e.hint) for e in errors] == 2 * [(
        f"The image {source.name} could not be saved as {folder}: portrait.png is a folder there, not a file.",
        "Pick another name, or open the folder portrait.png in the dialog and save into it.")]  # fmt: skip
    assert list(folder.iterdir()) == []  # nothing written into it
