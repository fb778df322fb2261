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
    """Whether ``err`` is an ImportError or OSError that importing torch raised: torch itself missing (its ``name``
    torch or a submodule), or raised while a torch module's own top-level code ran, which happens only as it is
    imported (a CUDA library or a DLL missing). An OSError torch raises later (``torch.load`` of a missing file)
    is not: it runs in a function, not at a module's top."""
    if not isinstance(err, (ImportError, OSError)):
        return False
    if isinstance(err, ImportError) and _is_torch(err.name):
        return True
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>" and _is_torch(frame.f_globals.get("__name__")):
            return True
        tb = tb.tb_next
    return False


def _is_torch(module: str | None) -> bool:
    return module is not None and (module == "torch" or module.startswith("torch."))


def require_torch() -> None:
    """Imports torch; a ``UserError`` naming why and what to do when it cannot be loaded."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:  # Windows: "OSError: [WinError 126] ... Error loading ...\c10.dll"
        raise torch_unusable(err) from err
