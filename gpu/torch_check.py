"""Whether PyTorch can be loaded at all: a damaged installation (a CUDA library or a Windows DLL missing, a torch
install cut short) raised ImportError or OSError from the first ``import torch``, a traceback on the command line and,
in the app, a start-up that never ended. Torch-free itself: it is what says torch is missing."""

from __future__ import annotations

import sys

from gpu.errors import UserError


def _remedy() -> str:
    """What to do when torch cannot be loaded, for this kind of install: the frozen app has no pip to run."""
    if getattr(sys, "frozen", False):
        return "the installation is damaged or incomplete: reinstall Nibble Studio"
    return ("the installation is damaged or incomplete: reinstall PyTorch, the build for this machine's CPU or CUDA, "
            "then the app with pip install -e . as README.md's Set-up says")


def require_torch() -> None:
    """Imports torch; a ``UserError`` naming why and what to do when it cannot be loaded."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:  # Windows: "OSError: [WinError 126] ... Error loading ...\c10.dll"
        raise UserError(f"PyTorch cannot be loaded: {err}", _remedy()) from err
