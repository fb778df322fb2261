"""R60 review: the prompt panel and generating in the main window, as a demanding desktop user drives them.

Each test shows a defect found in the review and fails on the code it was written against (strict xfail); each
passes once that defect is fixed. Real window, real engine, the shipped demo model, offscreen.
"""

from __future__ import annotations

import pytest

from app.generation_state import SEED_MAX


@pytest.mark.xfail(strict=True, reason="R60: a locked seed whose batch runs past 2^63-1 is queued and fails when its "
                                       "turn comes, instead of Generate refusing it at once naming Seed and Images")
def test_a_seed_whose_batch_runs_past_the_largest_seed_is_refused_at_generate(qtbot, window):
    """Seed 9223372036854775807 (the field's largest, which it says it takes) with Images 2: Generate queued the job,
    and the engine refused it only when its turn came, behind the jobs queued before it (minutes later, the user
    away): "seed … with 2 images runs past 2^63-1". Every other field problem is refused at Generate, naming the
    field and what it takes, before anything is queued."""
    controller = window.controller
    state = controller.prompt
    errors: list = []
    controller.error.connect(errors.append)
    state.prompt = "the last seeds"
    state.seed, state.seed_locked, state.batch_count = SEED_MAX, True, 2
    job = controller.generate()
    assert job is None and controller.queue.idle, "queued, to fail when its turn comes"
    assert len(errors) == 1 and errors[0].kind == "user"
    said = f"{errors[0].message} {errors[0].hint}"
    assert "Seed" in said and "Images" in said and str(SEED_MAX - 1) in said, said
