"""Console output of the command line and the self-test (``show``): one wording for an output that cannot be
written, wherever the line comes from. Torch- and Qt-free."""

from __future__ import annotations

from gpu.errors import OutputError

CANCELLED_EXIT = 130  # what a shell reports for a command ended by Ctrl-C (128 + SIGINT)


def show(text: str = "") -> None:
    """Prints ``text`` on stdout, flushed (nothing where there is no stdout: a windowed Windows executable). A write
    that fails is an ``OutputError`` saying the console output could not be written: ``> /dev/full`` or a full disk
    under a redirect said "error: No space left on device", read as the disk of the image or model. A reader that
    went away (a broken pipe) is left to the caller."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as err:  # not its cause: a full disk's error as cause passed for the model's disk being full
        raise OutputError(f"the command's output could not be written to the console (its standard output, or the "
                          f"file it is redirected to): {err.strerror or err}; the command stopped",
                          "redirect its output to a file on a disk with free space, or let it print in the "
                          "terminal") from None  # fmt: skip
