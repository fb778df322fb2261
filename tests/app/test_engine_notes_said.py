"""What the engine ran otherwise than asked is said: a guidance below 1 on a model without a guidance input (the demo
model) is run, and saved in the gallery, history and PNG, as 1, while the prompt panel kept showing 0.5 without a
word (the engine's note in ``GeneratedImage.extras["notes"]`` was read by nothing in the app)."""

from __future__ import annotations


def test_a_guidance_run_as_1_is_said_once_a_session(qtbot, window):
    state = window.controller.prompt
    shown: list = []
    window.controller.error.connect(shown.append)
    state.prompt, state.guidance, state.batch_count = "a cat", 0.5, 2
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        window.controller.generate()
    records = blocker.args[0]
    assert len(records) == 2 and all(r.settings["guidance"] == 1 for r in records)
    assert state.guidance == 0.5  # the panel keeps what the user set; the notice says what ran
    notes = [e for e in shown if e.kind == "notice"]
    assert len(notes) == 1, [e.message for e in shown]  # once for the job, not once an image
    assert "guidance 0.5 is the same as 1 on demo" in notes[0].message.lower()
    assert "saved, with guidance 1" in notes[0].message and notes[0].hint

    shown.clear()
    for guidance in (3.0, 0.5):  # a guidance that runs as asked, then the same note again: nothing said
        state.guidance, state.batch_count = guidance, 1
        with qtbot.waitSignal(window.controller.job_finished, timeout=120000):
            window.controller.generate()
    assert shown == []  # a queue of jobs at 0.5 showed the same dialog after each job
