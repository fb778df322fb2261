"""The Qt bindings the app runs on: a fault in them crashes the app however correct its own code is."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QLabel, QWidget


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: no count to lose")
def test_qt_calls_that_return_nothing_keep_the_reference_count_of_none(qapp):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None at each call of a method that returns nothing; after
    some thousands (setText at each progress step, setTabOrder for each LoRA row) the interpreter aborts with
    "Fatal Python error: none_dealloc". pyproject.toml excludes that version; this says so if one comes back."""
    label, first, second = QLabel(), QWidget(), QWidget()
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
        QWidget.setTabOrder(first, second)
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"1,000 Qt calls lost {lost} references to None (PySide6 6.12.0's fault: install another)"


def test_a_value_the_widget_cannot_show_is_logged_not_written_back(qapp, caplog):
    """A value set in code reaches the spin box, and the box's clamped answer is not written back over the state
    (only the user's edits are); a value outside the box is logged, since the job would use what the form hides."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QSpinBox

    from app.bindings import bind
    from app.observable import Prop

    class State(QObject):
        steps_changed = Signal(object)
        steps = Prop(4)

    state, box = State(), QSpinBox()
    box.setRange(1, 150)
    bind(state, "steps", box)
    state.steps = 20
    assert box.value() == 20 and not caplog.records
    state.steps = 200
    assert box.value() == 150 and state.steps == 200
    assert [r.getMessage() for r in caplog.records] == ["steps = 200 is shown as 150 (outside what the widget holds)"]
    box.setValue(7)  # the user's edit
    assert state.steps == 7
