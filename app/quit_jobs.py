"""What closing the window asks while jobs run or wait (``JobQueue.unfinished``), and what the log keeps of the jobs
the quit cancels: they went without a question and without a trace, a long batch and the jobs queued behind it."""

from __future__ import annotations

from collections.abc import Sequence

from app.engine_worker import Job
from app.history_model import prompt_line
from app.wording import counted
from gpu.generation.request import GenerationRequest

_PROMPT_LOGGED = 80  # characters of each prompt in the log: enough to tell the jobs apart (the history has them whole)


def _jobs_and_images(requests: Sequence[GenerationRequest]) -> str:
    """'3 jobs (9 images)', of the jobs' ``requests``."""
    return f"{counted(len(requests), 'job')} ({counted(sum(r.batch_count for r in requests), 'image')})"


def quit_question(jobs: Sequence[Job], held: Sequence[GenerationRequest] = ()) -> str:
    """The question a close asks before it cancels ``jobs`` and the Generate clicks ``held`` for the LoRA files
    (``HeldClicks``: jobs queued once they are read, as the status line said), at least one of them."""
    requests = [*(job.request for job in jobs), *held]
    one = len(requests) == 1
    return (f"{_jobs_and_images(requests)} {'is' if one else 'are'} running or queued. Quit and cancel "
            f"{'it' if one else 'them'}? The images already made are kept, and the prompts stay in the prompt "
            "history.")  # fmt: skip


def cancelled_on_quit(jobs: Sequence[Job], held: Sequence[GenerationRequest] = ()) -> str:
    """The log's line for ``jobs`` and the Generate clicks ``held`` for the LoRA files, cancelled by a quit: each
    job's images, steps and prompt."""
    described = [f"job {job.id}, {_described(job.request)}" for job in jobs]
    described += [f"a Generate waiting for its LoRA files, {_described(request)}" for request in held]
    return (f"{_jobs_and_images([*(job.request for job in jobs), *held])} cancelled by the quit: "
            f"{'; '.join(described)}")  # fmt: skip


def _described(request: GenerationRequest) -> str:
    """A job's ``request`` for the log: '4 images of 20 steps, on demo: 'a fox''."""
    steps = "the model's steps" if request.steps is None else counted(request.steps, "step")
    prompt = prompt_line(request.prompt, _PROMPT_LOGGED)  # one line: a log line per quit
    return f"{counted(request.batch_count, 'image')} of {steps}, on {request.model}: {prompt!r}"
