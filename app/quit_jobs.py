"""What closing the window asks while jobs run or wait (``JobQueue.unfinished``), and what the log keeps of the jobs
the quit cancels: they went without a question and without a trace, a long batch and the jobs queued behind it."""

from __future__ import annotations

from collections.abc import Sequence

from app.engine_worker import Job
from app.history_model import prompt_line
from app.wording import counted

_PROMPT_LOGGED = 80  # characters of each prompt in the log: enough to tell the jobs apart (the history has them whole)


def _jobs_and_images(jobs: Sequence[Job]) -> str:
    """'3 jobs (9 images)'."""
    return f"{counted(len(jobs), 'job')} ({counted(sum(job.request.batch_count for job in jobs), 'image')})"


def quit_question(jobs: Sequence[Job]) -> str:
    """The question a close asks before it cancels ``jobs`` (at least one)."""
    one = len(jobs) == 1
    return (f"{_jobs_and_images(jobs)} {'is' if one else 'are'} running or queued. Quit and cancel "
            f"{'it' if one else 'them'}? The images already made are kept, and the prompts stay in the prompt "
            "history.")  # fmt: skip


def cancelled_on_quit(jobs: Sequence[Job]) -> str:
    """The log's line for ``jobs`` cancelled by a quit: each job's images, steps and prompt."""
    described = []
    for job in jobs:
        request = job.request
        steps = "the model's steps" if request.steps is None else counted(request.steps, "step")
        prompt = prompt_line(request.prompt, _PROMPT_LOGGED)  # one line: a log line per quit
        described.append(f"job {job.id}, {counted(request.batch_count, 'image')} of {steps}, on {request.model}: "
                         f"{prompt!r}")  # fmt: skip
    return f"{_jobs_and_images(jobs)} cancelled by the quit: " + "; ".join(described)
