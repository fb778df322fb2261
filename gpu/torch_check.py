"""Whether PyTorch can be loaded at all: a damaged installation (a CUDA library or a Windows DLL missing, a torch
install cut short) raised ImportError or OSError from the first ``import torch``, a traceback on the command line and,
in the app, a start-up that never ended. Torch-free itself: it is what says torch is missing."""

from __future__ import annotations

import sys
from typing import TypeGuard

from gpu.errors import UserError


def _remedy() -> str:
    """What to do when torch cannot be loaded, for this kind of install: the frozen app has no pip to run."""
    if getattr(sys, "frozen", False):
        return "the installation is damaged or incomplete: reinstall Nibble Studio"
    return ("the installation is damaged or incomplete: reinstall PyTorch, the build for this machine's CPU or CUDA, "
            "then the app with pip install -e . as README.md's Set-up says")


def torch_unusable(err: ImportError | OSError) -> UserError:
    """The ``UserError`` that says torch cannot be loaded (``err``: what importing it raised) and what to do."""
    return UserError(f"PyTorch cannot be loaded: {err}", _remedy())


def from_importing_torch(err: BaseException) -> TypeGuard[ImportError | OSError]:
    """Whether ``err`` is an ImportError or OSError that importing torch itself raised: torch missing (its ``name``
    torch, or a torch module while torch is not loaded), or raised while torch's own ``__init__`` ran (a CUDA
    library or a DLL missing). Not an error once torch is loaded: a torch name the installed torch lacks (diffusers
    newer than torch), or a file ``torch.load`` cannot open, is a bug or a version skew, whose traceback is needed."""
    if not isinstance(err, (ImportError, OSError)):
        return False
    if isinstance(err, ImportError) and (err.name == "torch" or (
            (err.name or "").startswith("torch.") and "torch" not in sys.modules)):  # fmt: skip
        return True
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "torch":
            return True
        tb = tb.tb_next
    return False


def require_torch() -> None:
    """Imports torch; a ``UserError`` naming why and what to do when it cannot be loaded."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:  # Windows: "OSError: [WinError 126] ... Error loading ...\c10.dll"
        raise torch_unusable(err) from err
