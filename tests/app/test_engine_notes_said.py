"""What the engine ran otherwise than asked is said: a guidance below 1 on a model without a guidance input (the demo
model) is run, and saved in the gallery, history and PNG, as 1, while the prompt panel kept showing 0.5 without a
word (the engine's note in ``GeneratedImage.extras["notes"]`` was read by nothing in the app)."""

from __future__ import annotations

from tests.app.gui import generate_one


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
    assert "saved, with guidance 1" in notes[0].message and notes[0].hint == ""  # the note says all: no common hint

    shown.clear()
    for guidance in (3.0, 0.5):  # a guidance that runs as asked, then the same note again: nothing said
        state.guidance, state.batch_count = guidance, 1
        with qtbot.waitSignal(window.controller.job_finished, timeout=120000):
            window.controller.generate()
    assert shown == []  # a queue of jobs at 0.5 showed the same dialog after each job


def test_a_model_quantized_elsewhere_runs_with_the_librarys_pipeline_that_fits_it_and_says_so(qtbot, window,
                                                                                              tmp_path):
    """A copy of demo-int4 recording another machine's base (FLUX.1-dev at /nowhere) was added, then refused at
    Generate with "pass --base", a flag the app does not have: the model could not be used at all. The library's
    demo pipeline, which fits it, runs it; a notice names the base that ran, and the image records it."""
    from tests.test_base_fit import with_recorded_base

    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    far = with_recorded_base(tmp_path / "far.safetensors", {"name": "FLUX.1-dev", "path": "/nowhere/FLUX.1-dev",
                                                            "relative_path": "FLUX.1-dev"})  # fmt: skip
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(far)
    qtbot.waitUntil(lambda: controller.prompt.model == "far", timeout=60000)
    record = generate_one(qtbot, controller)
    assert record.settings["model"] == "far" and record.settings["base"] == "demo"
    assert [e.kind for e in shown] == ["notice"], [e.message for e in shown]
    assert shown[0].message.startswith("The base pipeline far.safetensors records (FLUX.1-dev) is not on this "
                                       "machine; it runs with the library's pipeline 'demo' (")  # fmt: skip
    assert shown[0].hint == ""  # not the guidance note's "set the panel to the settings that ran": nothing to set
