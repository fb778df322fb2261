"""The Quantize wizard's source page follows the library: a wizard opened as the window shows, before the engine had
read the library, listed no library model for good and checked "" as a folder (".: not a diffusers pipeline folder"),
Next greyed; a pipeline added while it was open was offered neither as a source nor as a base."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtWidgets import QWizard

from app.data_dir import resolve_data_dir
from app.quantize_run_turns import QuantizeRunTurns
from tests.app.gui import window_without_engine
from tests.bfl_files import pipeline_copy, save_bfl_transformer


def test_a_wizard_opened_as_the_engine_starts_offers_the_library_once_read_and_models_added_later(
        qtbot, data_root, demo_model, tmp_path):  # fmt: skip
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()  # as a user clicks right after the window shows, as run_app shows it
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    assert page.source.count() == 0 and not next_button.isEnabled()
    assert page.problem.text().startswith("No diffusers pipeline in your library yet: pick a FLUX.1 pipeline folder "
                                          "with Other folder…"), page.problem.text()  # fmt: skip

    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    qtbot.waitUntil(lambda: state.ready, timeout=60000)
    assert page.source.currentData() == state.source == "demo" and page.problem.isHidden()
    assert next_button.isEnabled() and state.calibration is not None

    # A pipeline added while the wizard is open is offered as a source and as a base; the source chosen stays.
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        window.controller.add_model(pipeline_copy(demo_model, tmp_path / "mine"), select=False)
    name = added.args[1]
    assert isinstance(name, str), name
    assert [page.source.itemData(i) for i in range(page.source.count())] == ["demo", name]
    assert name in [page.base.itemData(i) for i in range(page.base.count())]
    assert state.source == "demo" and next_button.isEnabled()
    wizard.close()


def _pipeline(name, path) -> SimpleNamespace:
    """A library entry of the diffusers pipeline at ``path`` (as ``AppController.library_changed`` sends them)."""
    return SimpleNamespace(name=name, path=str(path), kind="diffusers")


def _quantize_refused(wizard, monkeypatch) -> None:
    """Goes to the calibration page and presses Quantize there, which must start no run and show the source page."""
    started: list[str] = []
    monkeypatch.setattr(QuantizeRunTurns, "_choose_name", lambda self, source, name: started.append(source))
    wizard.next()
    assert wizard.currentPage() is wizard.source_page and started == [] and not wizard.run_state.running


def test_a_source_removed_from_the_library_on_a_later_page_stays_chosen_and_no_run_starts(
        qtbot, data_root, demo_model, tmp_path, monkeypatch):  # fmt: skip
    """The chosen source removed from the library (the Models panel) while the wizard showed a later page gave way to
    another model, and Quantize ran that one; the library emptied, the run started with no source at all. The source
    stays chosen and says it left the library; Quantize goes back to the source page, which says so."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    library = window.controller.library_changed
    other = _pipeline("other", pipeline_copy(demo_model, tmp_path / "other"))
    mine = _pipeline("mine", demo_model)
    library.emit([other, mine])
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    page.source.setCurrentIndex(page.source.findData("mine"))
    for left in ([other], []):  # "mine" removed; then the whole library
        library.emit([other, mine])
        assert state.source == "mine" and state.ready
        wizard.next()
        wizard.next()
        assert wizard.currentPage() is wizard.calibration_page
        library.emit(left)
        assert state.source == page.source.currentData() == "mine" and not state.ready, left
        assert page.source.currentText() == "mine (no longer in the library)"
        _quantize_refused(wizard, monkeypatch)
        assert page.problem.text() == ("mine is no longer in the library (it was removed since it was chosen here): "
                                       "add it again in the Models panel, or choose another source")  # fmt: skip
    library.emit([other, mine])  # added again: usable again
    assert state.source == "mine" and state.ready and page.problem.isHidden()
    wizard.close()


def _file_based_on_the_library_on_a_later_page(qtbot, data_root, demo_model, tmp_path):
    """The window and its wizard, on the calibration page, of a single file whose base is the library's "dev-base"
    (the demo model)."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    window.controller.library_changed.emit([_pipeline("dev-base", demo_model)])
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    page.use_path(str(save_bfl_transformer(demo_model, tmp_path / "my-finetune.safetensors")))
    qtbot.waitUntil(lambda: not state.checking, timeout=60000)
    assert state.base == "dev-base" and state.ready, state.problem
    wizard.next()
    wizard.next()
    return window, wizard


def test_a_single_files_base_removed_from_the_library_on_a_later_page_stays_chosen_and_no_run_starts(
        qtbot, data_root, demo_model, tmp_path, monkeypatch):  # fmt: skip
    """A single file's base pipeline removed from the library on a later page left the file with no base, and
    Quantize started its run without one, which said to "add --base PIPELINE", a command-line flag. The base stays
    chosen and says it left the library; Quantize goes back to the source page, which says so."""
    window, wizard = _file_based_on_the_library_on_a_later_page(qtbot, data_root, demo_model, tmp_path)
    page, state = wizard.source_page, wizard.source_state
    window.controller.library_changed.emit([])
    assert state.base == page.base.currentData() == "dev-base" and not state.ready
    assert page.base.currentText() == "dev-base (no longer in the library)"
    _quantize_refused(wizard, monkeypatch)
    assert page.base_problem.text() == ("dev-base is no longer in the library (it was removed since it was chosen "
                                        "here): add it again in the Models panel, or choose another base "
                                        "pipeline")  # fmt: skip
    wizard.close()


def test_a_source_added_again_from_another_folder_is_said_before_it_is_quantized(
        qtbot, data_root, demo_model, tmp_path, monkeypatch):  # fmt: skip
    """The chosen source removed from the library and added again under its name from another folder, while a later
    page showed, was taken as the source unsaid: Quantize made a copy of another model than the one chosen. The name
    goes on to the new folder, which the source page names; Quantize shows it first, and runs it when pressed again."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    library = window.controller.library_changed
    mine, elsewhere = demo_model, pipeline_copy(demo_model, tmp_path / "elsewhere" / "mine")
    library.emit([_pipeline("mine", mine)])
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    assert state.source == "mine" and state.ready
    wizard.next()
    wizard.next()
    library.emit([])
    library.emit([_pipeline("mine", elsewhere)])
    _quantize_refused(wizard, monkeypatch)
    said = (f"mine was added to the library again from another folder, {elsewhere} (it was {mine} when chosen here): "
            "that folder is the source now. Choose another source if it is not the one you meant")  # fmt: skip
    assert page.relisted.text() == said and not page.relisted.isHidden()
    assert state.source == page.source.currentData() == "mine" and state.ready
    assert page.source.currentText() == "mine"
    # Seen: Quantize runs it (the library name, which the engine opens at the new folder)
    wizard.next()
    wizard.next()
    started: list[str] = []
    monkeypatch.setattr(QuantizeRunTurns, "_choose_name", lambda self, source, name: started.append(source))
    wizard.next()
    assert started == ["mine"] and wizard.currentPage() is wizard.run_page
    wizard.close()


def test_a_source_page_showing_says_a_source_added_again_from_another_folder_and_another_choice_clears_it(
        qtbot, data_root, demo_model, tmp_path, monkeypatch):  # fmt: skip
    """Added again from another folder while the source page shows, the source is said to be the new folder there,
    and Quantize is not stopped for it again; a source chosen then is no longer said to be moved."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    library = window.controller.library_changed
    other = _pipeline("other", pipeline_copy(demo_model, tmp_path / "other"))
    library.emit([_pipeline("mine", demo_model), other])
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    elsewhere = pipeline_copy(demo_model, tmp_path / "elsewhere" / "mine")
    library.emit([_pipeline("mine", elsewhere), other])  # the name's folder changed at once (no list between)
    assert state.source == "mine" and state.ready
    assert page.relisted.text().startswith(f"mine was added to the library again from another folder, {elsewhere}")
    page.source.setCurrentIndex(page.source.findData("other"))
    assert state.source == "other" and page.relisted.isHidden() and state.relisted == ""
    page.source.setCurrentIndex(page.source.findData("mine"))
    assert state.source == "mine" and page.relisted.isHidden()
    library.emit([_pipeline("mine", demo_model), other])
    assert not page.relisted.isHidden()
    wizard.next()
    wizard.next()
    started: list[str] = []
    monkeypatch.setattr(QuantizeRunTurns, "_choose_name", lambda self, source, name: started.append(source))
    wizard.next()
    assert started == ["mine"]
    wizard.close()


def test_a_single_files_base_added_again_from_another_folder_is_said_before_the_file_is_quantized(
        qtbot, data_root, demo_model, tmp_path, monkeypatch):  # fmt: skip
    """A single file's base pipeline removed and added again under its name from another folder on a later page was
    taken as the base unsaid, and the file calibrated with another pipeline's encoders and prompts. The new folder is
    said on the source page, which Quantize shows first."""
    window, wizard = _file_based_on_the_library_on_a_later_page(qtbot, data_root, demo_model, tmp_path)
    page, state = wizard.source_page, wizard.source_state
    elsewhere = pipeline_copy(demo_model, tmp_path / "elsewhere" / "dev-base")
    window.controller.library_changed.emit([])
    window.controller.library_changed.emit([_pipeline("dev-base", elsewhere)])
    _quantize_refused(wizard, monkeypatch)
    assert page.relisted.text() == (
        f"dev-base was added to the library again from another folder, {elsewhere} (it was {demo_model} when chosen "
        "here): that folder is the base pipeline now. Choose another base pipeline if it is not the one you meant")
    assert state.base == page.base.currentData() == "dev-base" and state.ready and page.base_problem.isHidden()
    page.base.setCurrentIndex(0)  # "Choose the base pipeline…"
    assert page.relisted.isHidden()
    wizard.close()


def test_a_closed_wizard_no_longer_follows_the_library_and_one_opened_again_lists_it_as_it_is(
        qtbot, window, demo_model, tmp_path):  # fmt: skip
    """A closed wizard (kept by the panel while its run may stop) listed the library anew at every change, for good.
    Closed, it follows the library no more; the wizard "Quantize this model…" opens next lists a model added
    meanwhile."""
    panel = window.quantize_panel
    panel.open_button.click()
    closed = panel.wizard
    # Kept, as while its run stops (one with nothing left to do is let go of and deleted at once)
    closed.let_go.disconnect()
    closed.close()
    assert not closed.isVisible()
    listed = [closed.source_page.source.itemData(i) for i in range(closed.source_page.source.count())]
    assert listed == ["demo"]
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        window.controller.add_model(pipeline_copy(demo_model, tmp_path / "mine"), select=False)
    name = added.args[1]
    assert isinstance(name, str), name
    assert [closed.source_page.source.itemData(i) for i in range(closed.source_page.source.count())] == listed
    assert closed.source_state.library_sources() == ["demo"]
    panel.open_button.click()
    reopened = panel.wizard
    assert reopened is not closed and reopened.isVisible()
    page = reopened.source_page
    assert [page.source.itemData(i) for i in range(page.source.count())] == ["demo", name]
    assert name in [page.base.itemData(i) for i in range(page.base.count())]
    # The open one follows the library still
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        window.controller.add_model(pipeline_copy(demo_model, tmp_path / "theirs"), select=False)
    assert [page.source.itemData(i) for i in range(page.source.count())] == ["demo", name, added.args[1]]
    reopened.close()


def test_relisted_compares_with_the_folder_chosen_and_is_cleared_when_back_there_or_unlisted(
        qapp, demo_model, tmp_path):  # fmt: skip
    """``relisted`` compared the name's folder with the previous list, not with the folder chosen: a source moved
    A -> B and back to A, the folder the user chose, was said to be "added again from another folder, A (it was B when
    chosen here)", and Quantize on a later page stopped for it again; unlisted after being relisted, the page said
    both "no longer in the library" and "that folder is the source now". The same for a single file's base."""
    from app.quantize_source import NOT_IN_LIBRARY, QuantizeSource

    chosen, elsewhere = demo_model, pipeline_copy(demo_model, tmp_path / "elsewhere" / "mine")
    further = pipeline_copy(demo_model, tmp_path / "further" / "mine")
    file = str(save_bfl_transformer(demo_model, tmp_path / "my-finetune.safetensors"))
    for what in ("source", "base pipeline"):
        state = QuantizeSource([_pipeline("mine", chosen)])
        state.choose("mine")
        if what == "base pipeline":
            state.choose(file)
            state.engine_checked(file, "")  # the engine's check of its tensors, passed
            assert state.base == "mine" and state.ready
        said = (f"mine was added to the library again from another folder, {{new}} (it was {chosen} when chosen "
                f"here): that folder is the {what} now. Choose another {what} if it is not the one you meant")
        state.set_library([])
        state.set_library([_pipeline("mine", elsewhere)])
        assert state.relisted == said.format(new=elsewhere) and state.ready
        state.set_library([_pipeline("mine", further)])  # on again: still said of the folder chosen
        assert state.relisted == said.format(new=further)
        state.set_library([])
        assert state.relisted == "" and not state.ready  # the problem says it, alone
        assert NOT_IN_LIBRARY.format(name="mine", what=what) in (state.base_problem or state.problem)
        state.set_library([_pipeline("mine", elsewhere)])
        assert state.relisted == said.format(new=elsewhere)
        state.set_library([_pipeline("mine", chosen)])  # back at the folder chosen: nothing to say
        assert state.relisted == "" and state.ready, what
        state.set_library([])
        state.set_library([_pipeline("mine", chosen)])  # removed and added again from the same folder
        assert state.relisted == "" and state.ready


def test_a_folder_picked_by_path_follows_its_library_entry_both_ways(qtbot, data_root, demo_model, tmp_path):
    """A folder picked with Other folder… and added to the library while the wizard was open was listed twice, as
    the entry and as the path; a library pipeline's folder picked by path, its entry then removed in the Models
    panel (the folder still there), became "mine (no longer in the library)", Next greyed. (R52)"""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    library = window.controller.library_changed
    library.emit([_pipeline("demo", demo_model)])
    folder = pipeline_copy(demo_model, tmp_path / "mine")
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    shown = lambda: [page.source.itemData(i) for i in range(page.source.count())]  # noqa: E731
    page.use_path(str(folder))
    assert state.source == str(folder) and shown() == ["demo", str(folder)]
    library.emit([_pipeline("demo", demo_model), _pipeline("mine", folder)])  # added in the Models panel
    assert shown() == ["demo", "mine"] and state.source == page.source.currentData() == "mine" and state.ready
    library.emit([_pipeline("demo", demo_model)])  # removed there: the folder the user picked is still there
    assert shown() == ["demo", str(folder)] and state.source == page.source.currentData() == str(folder)
    assert state.ready and state.problem == ""
    library.emit([_pipeline("demo", demo_model), _pipeline("mine", folder)])
    page.use_path(str(folder) + "/")  # picked by path while listed: the entry
    assert state.source == "mine" and shown() == ["demo", "mine"]
    wizard.close()


def test_the_gpu_budget_is_greyed_where_the_engine_found_no_gpu(qtbot, data_root, demo_model):
    """On a computer without a CUDA GPU the run works on the CPU, yet the GPU memory budget was shown and editable,
    read as a setting of that run. (R51)"""
    from app.engine_worker import EngineStatus
    from gpu.system_info import GpuInfo

    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()  # opened as the engine starts: nothing known yet
    wizard = window.quantize_panel.wizard
    budget = wizard.calibration_page.gpu_gib
    assert budget.isEnabled()
    window.controller.engine_ready.emit(EngineStatus(gpu=None, entries=[_pipeline("demo", demo_model)]))
    assert not budget.isEnabled() and budget.toolTip().startswith("No CUDA GPU was found: the run works on the CPU")
    laptop_gpu = GpuInfo("NVIDIA GeForce RTX 4060 Laptop GPU", 89, 8 * 2**30, 7 * 2**30)
    window.controller.engine_ready.emit(EngineStatus(gpu=laptop_gpu, entries=[_pipeline("demo", demo_model)]))
    assert budget.isEnabled() and budget.toolTip() == ""
    wizard.close()


def test_a_wizard_opened_after_the_engine_started_knows_whether_it_found_a_gpu(qtbot, window):
    """This machine's engine answer, read as the wizard opens: greyed exactly where no GPU was found."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    assert window.controller.engine_started
    assert wizard.calibration_page.gpu_gib.isEnabled() == (window.controller.gpu is not None)
    wizard.close()
