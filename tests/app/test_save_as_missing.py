"""Save as… on a gallery image whose file was deleted behind the app's back: the remedy is to put the picture back
(another folder or name, the hint of a refused target, would not help), and nothing is written."""

from __future__ import annotations

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, saved_as, window_without_engine


def test_saving_an_image_whose_file_is_missing_says_to_put_it_back(qtbot, data_root, tmp_path):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    controller, gallery = window.controller, window.controller.gallery
    errors = []
    controller.error.connect(errors.append)
    record = gallery.record(0)
    source = gallery.path_of(record)
    source.unlink()

    assert saved_as(qtbot, controller, record, tmp_path / "out.png") is None
    assert [e.kind for e in errors] == ["user"]
    # was: "Pick another folder, or a name ending in .png."
    assert errors[0].hint == ("Put the picture back at that place, then save it again. Its settings can still be "
                              "reused (Reuse settings).")
    assert errors[0].message == f"The image {source.name} could not be saved as {tmp_path / 'out.png'}: its file " \
                                f"{source} is missing."  # fmt: skip  # was: "its file is missing", not where
    assert list(tmp_path.glob("out*")) == []
