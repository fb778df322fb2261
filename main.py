"""Nibble Studio entry point: ``python main.py`` opens the app (``python main.py IMAGE.png``: with that image handled
as one dropped on it); sub-commands run the engine headless.

    python main.py quantize SRC --out OUT.safetensors [--method ...] [--precision ...] [--rank 32] [--overwrite]
                                                  [--base PIPELINE]   (SRC a single-file checkpoint)
    python main.py generate "PROMPT" [--model NAME_OR_PATH] [--out FILE.png] [--seed S] ...
    python main.py inspect FILE.safetensors|NAME
    python main.py bench kernels [--out DIR]          (on a CUDA GPU)
    python main.py bench flux [--out DIR] [--tiny]    (on a CUDA GPU; --tiny runs anywhere)
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gpu.console import CANCELLED_EXIT, show  # torch-free
from gpu.paths import (  # torch-free
    DATA_DIR_ENV,
    blank_data_dir,
    data_dir_override,
    named_data_dir,
    user_data_dir,
    user_data_path,
)
from gpu.quantize_defaults import (
    DEFAULT_ALPHA_POINTS,
    DEFAULT_CALIB_PROMPTS,
    DEFAULT_GPU_BUDGET_GIB,
    DEFAULT_RAM_BUDGET_GIB,
    DEFAULT_RANK,
    unused_fields,
)

if TYPE_CHECKING:
    from gpu.generation.request import GeneratedImage
    from gpu.library import ModelEntry, ModelLibrary
    from gpu.quantizer.config import QuantizeEvent
    from gpu.streaming.stopped import QuantizeTold

LOGGED_COMMANDS = ("generate", "quantize")  # the ones that do real work: logged for problem reports
CLI_LOGGER = "nibble.cli"  # app.app_log.CLI_LOGGER, without importing it for --help

log = logging.getLogger(CLI_LOGGER)

SIGPIPE_EXIT = 141  # what a shell reports for a command ended by SIGPIPE (128 + 13), as `cat` would be
# Every exit status a run gives, as --help and the README say it
EXIT_STATUS = (f"exit status: 0 done (--self-test: passed); 1 --self-test failed, or a crash (a bug, its traceback "
               f"printed), or the app (no command) refused to start (its data folder cannot be made, another copy "
               f"of it uses that folder, or its database cannot be opened: said in a window); 2 a user error or a "
               f"usage error, said on stderr (--self-test too, when it cannot run: the data folder, a PyTorch that "
               f"cannot be loaded); {CANCELLED_EXIT} cancelled (Ctrl-C); {SIGPIPE_EXIT} the reader of the output went "
               f"away (a broken pipe: ... | head)")  # fmt: skip


def say(text: str) -> None:
    """A line for the console that a problem report needs too: written to the log file, and printed. Logged first:
    the file is the record, and a print that fails (a reader gone: ``generate … | head``) left out the line of
    an image already written."""
    log.info("%s", text)
    show(text)


def no_terminal() -> bool:
    """Whether no one reads stderr as this run starts: there is none (a windowed Windows executable), or it is no
    terminal (a .desktop file, a file manager's double click or the Dock on Linux and macOS send it to a log file,
    a journal or nowhere)."""
    try:
        return sys.stderr is None or not sys.stderr.isatty()
    except (AttributeError, ValueError):  # a stand-in stream without isatty, or one already closed
        return True


# Qt platforms that draw nowhere anyone looks: a window there is never seen, and a dialog waits for a click forever
UNSEEN_QT_PLATFORMS = ("offscreen", "minimal")


# Qt's platform plugins that open no display server: Qt's to try (a device, a VNC port, nothing at all)
DISPLAYLESS_QT_PLATFORMS = (*UNSEEN_QT_PLATFORMS, "minimalegl", "eglfs", "linuxfb", "vnc", "vkkhrdisplay")
WAYLAND_QT_PLATFORMS = ("wayland", "wayland-egl", "wayland-brcm")


def qt_platforms() -> list[str]:
    """The Qt platforms ``QT_QPA_PLATFORM`` names, lower case, in the order Qt tries them ("wayland;xcb": wayland,
    then xcb where it cannot open), without their options ("offscreen:size=…"); [""] when none is named (Qt's
    default for the system). Read as Qt reads it: empty parts skipped, spaces kept (" xcb" is no plugin, and Qt
    aborts); [] when it names none (";"), where Qt aborts too."""
    value = os.environ.get("QT_QPA_PLATFORM", "")
    if not value:
        return [""]
    words = ([word for word in part.split(":") if word] for part in value.split(";"))
    return [found[0].lower() for found in words if found]


def display_server_for(platform: str) -> bool | None:
    """On Linux and the other Unixes, whether the display server the Qt ``platform`` opens is named here
    (``DISPLAY`` for X11, ``WAYLAND_DISPLAY`` or the default socket for Wayland; "" is Qt's default, either); None
    for a platform that opens none (``DISPLAYLESS_QT_PLATFORMS``: offscreen, eglfs, vnc), which Qt tries on its own;
    False for a name that is no plugin Qt has (a typo, " xcb" with its space), where Qt goes on or aborts."""
    if platform in DISPLAYLESS_QT_PLATFORMS:
        return None
    if platform not in ("", "xcb", *WAYLAND_QT_PLATFORMS):
        return False
    x11 = bool(os.environ.get("DISPLAY"))
    if platform == "xcb":  # named: only X11 will do, a Wayland session without XWayland aborts
        return x11
    # Qt's Wayland client takes the socket "wayland-0" when WAYLAND_DISPLAY is unset, but Qt picks that client
    # only when it is named or the session is a Wayland one: over ssh the user's socket is there, and xcb aborts
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    socket = bool(runtime and os.path.exists(os.path.join(runtime, "wayland-0")))
    wayland = bool(os.environ.get("WAYLAND_DISPLAY")) or (socket and (
        platform in WAYLAND_QT_PLATFORMS or os.environ.get("XDG_SESSION_TYPE") == "wayland"))  # fmt: skip
    return wayland if platform else x11 or wayland


def no_display_for_the_window() -> bool:
    """Whether the app's window has no display to open on: no platform Qt would try has its display server
    (``display_server_for``), as under ssh, cron or a systemd service, where Qt aborts the process (SIGABRT, exit
    134) saying that reinstalling may help. Qt falls back along a list ("wayland;xcb"), so one platform that has its
    display, or that needs none (offscreen, eglfs: Qt's to try), is enough. Never on Windows and macOS."""
    if sys.platform in ("win32", "darwin"):
        return False
    return all(display_server_for(name) is False for name in qt_platforms())


NO_DISPLAY = ("error: no display to open the window on (start the app in a desktop session, or over ssh with X "
              "forwarding, ssh -X; the commands run without one: main.py --help lists them)")


def gui_can_be_seen() -> bool:
    """Whether a window this run opens would be on a screen someone looks at: the first platform Qt can open (in
    ``QT_QPA_PLATFORM``'s order, ``qt_platforms``) is one with its display server. On Windows and macOS there is
    one (a desktop session); elsewhere only where a display server is named (``display_server_for``): an ssh
    session, cron, CI or a systemd service has neither, and Qt, unable to open its platform there, aborts the
    process (SIGABRT) after the error line. Never where Qt takes offscreen or minimal first, whatever the system:
    such a dialog is drawn nowhere and waits for a click that never comes."""
    for name in qt_platforms():
        if name in UNSEEN_QT_PLATFORMS:  # opens anywhere: Qt goes no further along the list
            return False
        if sys.platform in ("win32", "darwin"):
            return True
        has_display = display_server_for(name)
        if has_display is None:  # eglfs, linuxfb, vnc may have no device here either: no dialog, the line printed
            return False
        if has_display:
            return True
    return False


def windowed_app(args: argparse.Namespace) -> bool:
    """Whether this run opens the app with no terminal to say why it cannot start (``no_terminal``), where a
    dialog can be seen (``gui_can_be_seen``): a user who double-clicked the app saw nothing at all when the line
    went to stderr alone. A run with no display (ssh with stderr redirected, cron, CI) prints the line and exits 2,
    as a terminal's does: its dialog would abort the process or wait unseen."""
    return args.command is None and not args.self_test and no_terminal() and gui_can_be_seen()


def print_error(line: str) -> None:
    """``line`` on stderr, where there is one (a windowed Windows executable has none: ``sys.stderr`` is None)."""
    if sys.stderr is not None:
        print(line, file=sys.stderr)


def refuse_blank_data_dir(args: argparse.Namespace, what: str, fix: str) -> int:
    """Refuses a --data-dir that names no folder (``blank_data_dir``'s ``what`` and ``fix``), in every mode: exit
    2, said on stderr, and in a dialog too by an app started with no terminal (``windowed_app``)."""
    print_error(f"error: {what} ({fix})")
    if windowed_app(args):
        from app.main_window import show_start_refused

        show_start_refused(with_program([]), what, fix)  # not the words refused: Qt would obey -platform there
    return 2


def choose_data_dir(flag: str | None, default_needed: bool = False, default_written: bool = False) -> str:
    """Makes ``flag`` the engine's and the app's data folder and creates the chosen one (--data-dir, else
    NIBBLE_DATA_DIR, both read by ``named_data_dir``: ``~`` expanded, absolute) with the engine's own
    ``user_data_dir``, so the check is the creation every later step relies on, and a file made in it (a folder that
    exists already may not take one: a later step would fail naming some file inside). Returns the error line
    naming the option or variable when the folder cannot be used, else ''. The default per-user folder is checked
    the same way where ``default_needed`` (the commands that write it: generate, quantize, the self-test), its line
    naming both ways to give another; the app says its own problems in its start-up dialog, and inspect and bench
    never need it. Only ``default_written`` (the self-test, whose report goes there) checks that the default folder
    takes a file: generate and quantize ran in a read-only one, and still do. ``flag`` names a folder (``main``
    refuses a blank one first: ``blank_data_dir``)."""
    if flag is not None:
        folder = named_data_dir(flag)
        where, fix = f"--data-dir {flag}", "give --data-dir a folder you can write to, e.g. --data-dir ~/nibble-data"
    else:  # an empty variable, or one of spaces, is unset, as the engine reads it
        # named as the user set it: reading it makes the variable absolute (``data_dir_override``)
        where = f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV)}"
        folder = data_dir_override()
        fix = f"set {DATA_DIR_ENV} to a folder you can write to, or unset it"
    if folder is None and default_needed:
        # The engine made it on first use, and its bare error ("error: /home/u/.local: Permission denied") named
        # neither the data folder nor a way round it
        folder = user_data_path()
        where = str(folder)
        fix = f"give a folder you can write to with --data-dir PATH, or set {DATA_DIR_ENV} to one"
        probed = default_written
    elif folder is None:
        return ""
    else:  # exported absolute (``named_data_dir``), as a later chdir must not move it
        os.environ[DATA_DIR_ENV] = str(folder)
        probed = True
    from gpu.output_folders import check_folder_writable, folder_problem

    try:
        made = user_data_dir()
        if probed:
            check_folder_writable(made)
    except OSError as err:
        return f"error: {where}: cannot use it as the data folder: {folder_problem(folder, err)} ({fix})"
    return ""


class UsageError(Exception):
    """A command line ``CommandLine`` refused: argparse's message, and the name (``prog``: "main.py generate") and
    ``usage`` line of the parser that refused it (a sub-command's for its own arguments)."""

    def __init__(self, message: str, prog: str, usage: str) -> None:
        super().__init__(message)
        self.prog, self.usage = prog, usage


class CommandLine(argparse.ArgumentParser):
    """main.py's parser (its sub-commands' too): a usage error is raised as ``UsageError`` for ``main`` to say, on
    stderr and, for an app started with no terminal, in a dialog, instead of argparse's print and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog, self.format_usage())


def refuse_usage(err: UsageError) -> NoReturn:
    """Says the usage error ``err`` as argparse does (the usage line, then "main.py: error: ...", on stderr; exit 2)
    and, where the run cannot be a script (``started_by_the_desktop``) and a dialog can be seen, in the start-refused
    dialog too: the app exited 2 with nothing seen."""
    print_error(f"{err.usage}{err.prog}: error: {err}")
    if started_by_the_desktop() and gui_can_be_seen():
        from app.main_window import show_start_refused

        usage = " ".join(err.usage.split()).removeprefix("usage: ")
        show_start_refused(with_program([]), f"The command line was not understood: {err}",
                           f"start Nibble Studio without arguments (what it takes: {usage})")  # fmt: skip
    raise SystemExit(2)


def app_with_file(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    """The app's command line with files to open (``open_files``), for an ``argv`` ``parser`` refused: the images a
    file manager passes as the last arguments (dropped on the executable, several at once too, "Open with", a
    .desktop file's %F). Only trailing arguments that are no sub-command are taken for files: those named .png, and
    where the run cannot be a script (``started_by_the_desktop``) any that is there (a JPEG, a text file, said as
    the drop says it); a script's ``main.py model.safetensors``, the sub-command forgotten, still gets its usage
    error rather than a window that waits. Taken only when the rest is the app's own command line (no sub-command,
    no --self-test): the most of them that leaves it so (``--data-dir d x.png`` keeps ``d`` where it is there). None
    otherwise, the usage error said as before. Asked only of a refused command line: every one that was read
    before is read the same."""

    def a_file(arg: str) -> bool:
        named = arg.lower().endswith(".png") or (started_by_the_desktop() and os.path.exists(arg))
        return named and arg not in COMMANDS and not arg.startswith("-")

    files = 0
    while files < len(argv) and a_file(argv[len(argv) - 1 - files]):
        files += 1
    for taken in range(files, 0, -1):
        try:
            args = parser.parse_args(argv[:-taken])
        except UsageError:
            continue
        if args.command is not None or args.self_test:
            return None
        args.open_files = argv[-taken:]
        return args
    return None


def started_by_the_desktop() -> bool:
    """Whether this run is the windowed executable, where no one reads a usage error on stderr: it has none (the
    windowed Windows executable), or it is the frozen app with no terminal (a shortcut given options it does not
    take; a file dropped on the app or opened with it is opened, ``app_with_file``). Anywhere else a terminal or a
    script reads stderr: a dialog held a script up until someone clicked (``main.py model.safetensors``, the
    sub-command forgotten, with stderr captured)."""
    return sys.stderr is None or (bool(getattr(sys, "frozen", False)) and no_terminal())


def build_parser() -> argparse.ArgumentParser:
    p = CommandLine(
        prog="main.py",
        description="Nibble Studio: 4-bit SVDQuant diffusion models on laptop GPUs. "
        "Without a sub-command the desktop app opens.",
        epilog=EXIT_STATUS,
    )
    p.add_argument("--data-dir", help=f"folder for user data (default: per-user app data; env {DATA_DIR_ENV})")
    p.add_argument("--self-test", action="store_true",
                   help="generate one image offscreen with the default model, check it, print the report; exit 0 "
                   "when it passes, 1 when not, 2 when it cannot run: the data folder, a PyTorch that cannot be "
                   "loaded")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    q = sub.add_parser("quantize", help="quantize a diffusers pipeline into an SVDQ .safetensors file")
    q.add_argument("src", help="diffusers pipeline folder, library model name, or single-file FLUX.1 checkpoint "
                   "(BFL or ComfyUI layout; needs --base)")
    q.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    q.add_argument("--method", default="svdquant", choices=["svdquant", "naive", "smoothquant", "svd", "lorc", "nf4"])
    # --precision, --rank and --alpha-points default to None, for the run to tell the ones given from the defaults
    # (``tell_ignored_options``): QuantizeConfig's defaults, the ones their help names, fill the others in
    q.add_argument("--precision", choices=["int4", "nvfp4", "fp4", "int8"],
                   help="number format of the quantized weights (default int4)")
    q.add_argument("--rank", type=int, help=f"rank of the 16-bit low-rank branch (default {DEFAULT_RANK})")
    q.add_argument("--calib-prompts", type=int, default=DEFAULT_CALIB_PROMPTS,
                   help=f"number of calibration prompts (default {DEFAULT_CALIB_PROMPTS}): the first N of the "
                        "model's own set (nibble.json's calibration_prompts), else of the built-in one; asking for "
                        "more uses them all, and the run says so")  # fmt: skip
    q.add_argument("--calib-steps", type=int, default=None,
                   help="denoising steps per calibration prompt (default: the model's own steps, at most 8)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--alpha-points", type=int, metavar="N",
                   help="smoothing strengths the alpha search tries, evenly over 0..1 "
                   f"(default {DEFAULT_ALPHA_POINTS}: 0, 0.1, ..., 1; fewer is faster)")  # fmt: skip
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists already")
    q.add_argument("--no-resume", action="store_true",
                   help="start over instead of resuming: the parts folder OUT.parts that an unfinished run left (its "
                   "finished blocks) is deleted once this run has recorded its calibration samples, and replaced by "
                   "this run's; nothing else is deleted (an existing OUT still needs --overwrite)")  # fmt: skip
    q.add_argument("--base", help="for a single-file SRC: the diffusers FLUX.1 pipeline (folder or library name) "
                   "whose text encoders, tokenizers and scheduler calibrate it")
    q.add_argument("--per-layer-smoothing", action="store_true",
                   help="smooth every linear on its own (default: Q/K/V share one vector, so they run as one GEMM)")
    q.add_argument("--gpu-budget", type=float, default=DEFAULT_GPU_BUDGET_GIB, metavar="GIB",
                   help=f"GPU memory the run may use (default {DEFAULT_GPU_BUDGET_GIB:g}; held on CUDA)")
    q.add_argument("--ram-budget", type=float, default=DEFAULT_RAM_BUDGET_GIB, metavar="GIB",
                   help=f"host memory for block inputs before they go to disk (default {DEFAULT_RAM_BUDGET_GIB:g})")

    g = sub.add_parser("generate", help="generate an image (PNG with A1111-compatible metadata)")
    g.add_argument("prompt")
    g.add_argument("--model", default="demo", help="library name, diffusers folder or SVDQ file (default: demo)")
    g.add_argument("--out", type=Path, help="output PNG, replaced if it exists (default: nibble-<seed>.png in "
                   "the current folder, or nibble-<seed>-2.png, … when that is taken)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int)
    g.add_argument("--width", type=int)
    g.add_argument("--height", type=int)
    g.add_argument("--guidance", type=float)
    g.add_argument("--negative", default="", help="negative prompt")
    g.add_argument("--base", help="for an SVDQ file: the diffusers pipeline (folder or library name) whose text "
                   "encoders and VAE it runs with (overrides the recorded one)")
    g.add_argument("--batch", type=int, default=1, help="number of images (seeds S, S+1, ...)")
    g.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH[:TEXT_STRENGTH]]",
                   help="apply a FLUX.1 LoRA (.safetensors), strength -2..2 (default 1); TEXT_STRENGTH for its "
                        "CLIP/T5 parts, if it has any (default: STRENGTH); repeatable")

    i = sub.add_parser("inspect", help="validate an SVDQ file and print its metadata and layers")
    i.add_argument("model", metavar="FILE_OR_NAME", help="SVDQ .safetensors file, or its library name (as "
                   "generate --model takes it)")

    b = sub.add_parser("bench", help="GPU benchmarks (kernels: fused SVDQ linear vs cuBLAS at FLUX shapes; "
                       "flux: full FLUX.1-dev transformer step, BF16 eager/compiled and FP8 rowwise compiled vs ours)")
    b.add_argument("what", choices=["kernels", "flux"])
    b.add_argument("--out", type=Path, default=Path("bench-out"), help="folder for JSON + markdown")
    b.add_argument("--rank", type=int, default=32)
    b.add_argument("--iters", type=int, default=30, help="timed runs per measurement (median)")
    b.add_argument("--tiny", action="store_true", help="flux: tiny config on any device (plumbing check)")
    b.add_argument("--steps", type=int, help="flux: timed steps per variant (default 10; 3 with --tiny)")
    b.add_argument("--compile-mode", default="default", choices=COMPILE_MODES,
                   help="flux: torch.compile mode of the BF16 baseline")
    b.add_argument("--lora-rank", type=int, default=16,
                   help="flux: rank of the random LoRA timed on the fused model (0: skip that variant)")
    b.add_argument("--compile-scope", default="regional", choices=["regional", "full"],
                   help="flux: compile each repeated block (regional, default) or the whole model")
    return p


# The quantize options that set a QuantizeConfig field, for saying how to resume a parts folder made with other
# settings (``PartsToReplace.resume_with``): field -> option, its value after it.
_QUANTIZE_OPTIONS = {"method": "--method", "precision": "--precision", "rank": "--rank",
                     "calib_prompts": "--calib-prompts", "calib_steps": "--calib-steps", "seed": "--seed",
                     "alpha_points": "--alpha-points"}  # fmt: skip


def _resume_option(name: str, value: object) -> str | None:
    """How the command is given the setting ``name`` of ``value`` (a ``QuantizeConfig`` field, or "base": the
    pipeline the folder was calibrated with, another than the run's --base, ``PartsToReplace.other_base``), in words
    ("with --rank 8"); None when it has no option (only a caller of the engine sets it)."""
    if name == "base":
        return f"with --base naming the pipeline it was made with ({value})"
    if name == "shared_smoothing":
        return "without --per-layer-smoothing" if value else "with --per-layer-smoothing"
    if name == "calib_steps" and value is None:  # the model's default
        return "without --calib-steps"
    return f"with {_QUANTIZE_OPTIONS[name]} {value}" if name in _QUANTIZE_OPTIONS else None


def quantize_cancel_note(parts: Path, told: QuantizeTold, no_resume: bool) -> str:
    """Where a stopped quantize run (cancelled, or failed) left the parts folder ``parts``, and how the same command
    uses it, as the engine said it (``told``): ``gpu.streaming.stopped.stopped_note`` in the command's words; "" when
    there is nothing."""
    from gpu.streaming.stopped import RunAgain, stopped_note

    again = RunAgain("run the same command again", _resume_option, changed="", replaces=True, command="this command",
                     to_resume="without --no-resume" if no_resume else "")  # fmt: skip
    return stopped_note(parts, told, again)


def cmd_quantize(args: argparse.Namespace) -> int:
    from gpu.errors import BadRequestError, Cancelled
    from gpu.library import ModelLibrary
    from gpu.output_lock import lock_path
    from gpu.output_names import check_output_path
    from gpu.quantizer import QuantizeConfig, quantize_model
    from gpu.streaming.parts_folder import parts_dir
    from gpu.streaming.stopped import QuantizeTold

    check_base_given(args.base)
    # Before the calibration, not after it; the parts folder and lock file beside OUT have longer names.
    check_output_path(args.out, example="out.safetensors", beside=(parts_dir(args.out), lock_path(args.out)))
    # A model is a .safetensors file: what the library and generate --model read a model file by (in any case, and
    # a link's target's name counts too), written in lower case, as the app's own models are named
    if args.out.suffix != ".safetensors":
        raise BadRequestError(f"--out {args.out}: models are written as .safetensors files",
                              f"use a name ending in .safetensors, e.g. {args.out.stem}.safetensors")  # fmt: skip
    given = {field: value for field, value in (("precision", args.precision), ("rank", args.rank),
             ("alpha_points", args.alpha_points), ("shared_smoothing", False if args.per_layer_smoothing else None))
             if value is not None}  # fmt: skip
    # An option the method does not use is said ignored (tell_ignored_options), and is: not checked either ("--method
    # naive --rank -5" said the rank was ignored, then refused it)
    used = {field: value for field, value in given.items() if field not in unused_fields(args.method)}
    cfg = QuantizeConfig(
        method=args.method, calib_prompts=args.calib_prompts, calib_steps=args.calib_steps, seed=args.seed,
        base=args.base, gpu_budget_gib=args.gpu_budget, ram_budget_gib=args.ram_budget, resume=not args.no_resume,
        **used,
    )  # fmt: skip
    tell_ignored_options(cfg.method, given)

    told = QuantizeTold()

    def show(ev: QuantizeEvent) -> None:
        eta = f" (ETA {ev.eta_s:.0f} s)" if ev.eta_s is not None and ev.kind == "layer" else ""
        prefix = f"[{ev.index}/{ev.total}] " if ev.kind == "layer" else ""
        told.heard(ev)
        if ev.message:
            say(f"{ev.elapsed_s:7.1f}s {prefix}{ev.message}{eta}")
        told.passed(ev)  # only once said: a Ctrl-C while it is said stops before the deletion it announces

    library = ModelLibrary()
    try:
        quantize_model(args.src, args.out, cfg, on_event=show, library=library, replace=args.overwrite)
    except (Cancelled, KeyboardInterrupt):
        args.cancel_note = quantize_cancel_note(parts_dir(args.out), told, args.no_resume)
        raise
    except BaseException as exc:
        # A run that fails after writing parts (a shard gone, a disk full) keeps them as a Ctrl-C does: said in the
        # same words, as the wizard says them. Only once the engine looked at the folder: a run refused before (its
        # source, its settings, another run on OUT) has its error say all there is, and the folder is not its own;
        # and only where the error has not said it already (a full disk: ``DiskSpaceError.kept_said``).
        if told.anything and not getattr(exc, "kept_said", False):
            args.failed_note = quantize_cancel_note(parts_dir(args.out), told, args.no_resume)
        raise
    finally:
        tell_library_notices(library)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from gpu.errors import Cancelled
    from gpu.generation.pipeline_loader import NoBase
    from gpu.generation.request import GenerationRequest, check_batch_count
    from gpu.generation.service import GenerationService, save_image
    from gpu.lora import parse_lora_args
    from gpu.lora.keys import parts_text
    from gpu.lora.metadata import strength_words

    check_base_given(args.base)
    request = GenerationRequest(
        prompt=args.prompt, model=args.model, negative_prompt=args.negative, seed=args.seed, steps=args.steps,
        guidance=args.guidance, width=args.width, height=args.height, batch_count=args.batch, base=args.base,
        loras=parse_lora_args(args.lora),
    )  # fmt: skip
    if args.out is not None:  # before the generation, not after it
        check_batch_count(args.batch)  # before a name for each image: --batch 20000000 took half an hour to refuse
        check_png_output(args.out, [batch_image_path(args.out, i) for i in range(args.batch)] if args.batch > 1 else [])
    else:
        check_current_folder()
    service = GenerationService()
    started = time.perf_counter()

    saved: list[Path] = []

    def save(result: GeneratedImage) -> None:  # as each image is done: Ctrl-C in a long batch keeps the finished ones
        if args.out is None:  # named by its own seed, which already tells a batch's images apart
            out = save_new_image(result)
        else:  # names the user gave are replaced
            out = save_image(result, batch_image_path(args.out, len(saved)) if request.batch_count > 1 else args.out)
        saved.append(out)
        s = result.settings
        size = f"{s['width']}x{s['height']}"
        say(f"wrote {out} ({size}, {s['steps']} steps, seed {s['seed']}, {s['duration_s']:.2f} s)")
        if len(saved) == 1:  # a batch shares its prompts: said once, with the first image
            tell_job_notes(result)

    try:
        # Validated first: a plan for an impossible size (--width=2000000000: "needs about 579834 GiB … try a 4-bit
        # model") was said before the size was refused.
        settings = service.resolve_settings(request, service.library.resolve(request.model))
        width, height = settings["width"], settings["height"]
        # Before loading: a model that will not fit is said before the wait, and before a load that runs out of memory
        planned = service.describe(request.model, request.base, width, height).memory_policy.label
        say(planned)
        results = service.generate(request, on_image=save)
    except NoBase as err:  # the engine's remedy fits the app too, which has no --base; here there is one
        if args.base is not None:
            raise
        raise NoBase(str(err), f"{err.hint}, or give its folder or library name with --base", err.problem) from None
    except (Cancelled, KeyboardInterrupt, BrokenPipeError):  # a reader gone ends the batch too: said as a stop
        one = len(saved) == 1
        args.cancel_note = (f"{', '.join(str(p) for p in saved)} {'was' if one else 'were'} written before it "
                            f"and {'is' if one else 'are'} kept" if saved else "no image was written")  # fmt: skip
        raise
    finally:
        tell_library_notices(service.library)
    say(f"model {results[0].settings['model']}: {results[0].settings['execution_path']}")
    loaded = service.describe(request.model, request.base, width, height).memory_policy
    if loaded is not None and loaded.label != planned:  # re-planned from the loaded parts' sizes, the base, the LoRAs
        say(f"Memory plan as loaded: {loaded.description}")
    for lora in results[0].settings.get("lora_list", []):
        changes = parts_text(lora.get("changes", ["transformer"]))
        say(f"lora {lora['name']} ({lora['format']}, rank {lora['rank']}; changes the {changes}): "
            f"{strength_words(lora)}")  # fmt: skip
    say(f"total {time.perf_counter() - started:.2f} s")
    return 0


def tell_library_notices(library: ModelLibrary) -> None:
    """What the model library did to the user's library.json while the command ran (kept a damaged file aside,
    copied a newer version's aside): said on stderr, since the user's added models would otherwise vanish
    without a word."""
    for notice in library.take_notices():
        print(f"note: {notice.text}", file=sys.stderr)


def tell_job_notes(result: GeneratedImage) -> None:
    """What a job did otherwise than asked, said on stderr: a prompt longer than the model reads (cut by the text
    encoder without a word), quoting the end the model ignored, so the user can shorten it; and the job's ``notes``
    (guidance below 1 on a model where it does nothing, saved as the guidance that ran)."""
    over = [length.note(label, result.settings["model"])
            for label, length in result.extras.get("prompt_lengths", {}).items() if length.over]  # fmt: skip
    for text in [*over, *result.extras.get("notes", [])]:
        line = f"note: {text}"
        print(line, file=sys.stderr)
        log.info("%s", line)


def check_current_folder() -> None:
    """Without --out the images go into the current folder: an OutputError naming it now, before the model loads
    and the first image is made, if no file can be made there (a file is made and removed to check)."""
    from gpu.output_folders import make_output_folder

    make_output_folder(Path.cwd(), "the images into the current folder",
                       "run the command in a folder you can write to, or give --out a file in one")  # fmt: skip


def save_new_image(result: GeneratedImage) -> Path:
    """Writes ``result`` into the current folder as ``nibble-<seed>.png``, or ``nibble-<seed>-2.png``, … when that
    is taken, and returns the name used. The name is claimed as the file is published: another run writing into
    the same folder meanwhile (a batch scripted with ``&``) keeps its image, and this one takes the next name."""
    from gpu.atomic import atomic_write_new
    from gpu.generation.png_metadata import encode_png

    # A plain write into atomic_write_new's scratch file (write_png, atomic itself, wrote into a scratch folder of
    # its own, fsynced twice, and its errors named its temporary file, not the image)
    result.path = atomic_write_new(Path(f"nibble-{result.settings['seed']}.png"),
                                   lambda tmp: encode_png(tmp, result.image, result.settings))  # fmt: skip
    return result.path


def tell_ignored_options(method: str, given: dict[str, object]) -> None:
    """Says on stderr (and in the log) which of the quantize options the user gave (``given``: their
    ``QuantizeConfig`` fields) the ``method`` does not use (``unused_fields``): ``--method nf4 --rank 64`` ran
    without a word, as if the rank had counted."""
    options = {**_QUANTIZE_OPTIONS, "shared_smoothing": "--per-layer-smoothing"}
    if ignored := [options[field] for field in given if field in unused_fields(method)]:
        line = f"note: --method {method} does not use {', '.join(ignored)}: ignored"
        print(line, file=sys.stderr)
        log.info("%s", line)


def check_base_given(base: str | None) -> None:
    """ModelLoadError for a --base that names nothing: empty (``--base "$UNSET"``) or only spaces. It was taken for
    no --base, and the model ran with the base it records (or a single file without one), where --model "" is
    refused (``ModelLibrary.resolve``): said in the same words."""
    from gpu.errors import ModelLoadError

    if base is not None and not base.strip():
        blank = "only spaces" if base else "empty"
        raise ModelLoadError(f'--base "{base}": no base pipeline given (the name is {blank})',
                             "give a pipeline's folder or library name, or leave --base out")  # fmt: skip


def batch_image_path(out: Path, index: int) -> Path:
    """Where image ``index`` (from 0) of a batch given ``--out OUT.png`` is written: OUT-0.png, OUT-1.png, …"""
    return out.with_name(f"{out.stem}-{index}{out.suffix}")


def check_png_output(out: Path, batch: list[Path] | tuple[Path, ...] = ()) -> None:
    """--out must be a writable file name ending in .png (the image is PNG with its metadata chunks); ``batch``:
    the names a batch writes instead of ``out`` itself (``batch_image_path``), each checked (a folder at the
    second one stopped the batch after its first image; one at ``out``, never written then, refused it)."""
    from gpu.errors import BadRequestError
    from gpu.generation.png_metadata import png_name_problem
    from gpu.output_names import check_output_path

    if not batch:
        check_output_path(out)
    for name in batch:  # the first with the last (the longest name) beside it: the limit said for the shortest
        check_output_path(name, beside=batch[-1:] if name == batch[0] else ())
    if problem := png_name_problem(out):
        raise BadRequestError(f"--out {out}: {problem}", f"use a name ending in .png, e.g. {out.stem}.png")


def cmd_inspect(args: argparse.Namespace) -> int:
    from gpu.checkpoint.format import inspect_checkpoint
    from gpu.checkpoint.scheduler import scheduler_words
    from gpu.errors import ModelLoadError
    from gpu.library import ModelLibrary
    from gpu.paths import user_data_path

    library = ModelLibrary(user_data_path())  # read only: a missing data folder is an empty library, not made
    try:
        entry = library.resolve(args.model)  # a library name or a path, as generate --model takes it
    finally:
        tell_library_notices(library)
    if entry.kind != "svdq":  # the only other kind the library takes
        raise ModelLoadError(f"{entry.path} is a diffusers pipeline folder, not an SVDQ file",
                             "inspect reads the .safetensors files that quantize writes")  # fmt: skip
    # Read through a small buffer (a 12B model's file is not held in memory); the header once, checked and printed.
    meta, entries = inspect_checkpoint(entry.path)
    q, c = meta.quantization, meta.calibration
    show(f"{entry.path.name}: SVDQ format v{meta.format_version}, {meta.architecture} ({meta.model_class}), "
         f"checksum OK ({meta.sha256[:16]}...)")
    show(f"  quantization: {q.get('method')} {q.get('precision')} rank {q.get('rank')}; storage {meta.dtype}")
    grid = c.get("alpha_points")  # said when not the default (None: made before the setting, or no smoothing)
    show(f"  calibration:  {c.get('prompts')} prompts x {c.get('steps')} steps, seed {c.get('seed')}, "
         f"mean layer error {_fmt(c.get('mean_layer_error'))}"
         + (f", alpha grid of {grid} points" if grid not in (None, DEFAULT_ALPHA_POINTS) else ""))
    show(f"  base model:   {base_model_words(entry, library)}")
    show(f"  scheduler:    {scheduler_words(meta)}")
    show(f"  made by:      {meta.tool}, {meta.created}")
    mib = sum(e["data_offsets"][1] - e["data_offsets"][0] for e in entries.values()) / 2**20
    show(f"  tensors:      {len(entries)}, {mib:.1f} MiB")
    show()
    header = (
        f"{'layer':<52} {'kind':<6} {'method':<11} {'weight':<7} {'act':<7} {'rank':>4} {'N x K':>13} "
        f"{'alpha':>5} {'error':>9}"
    )
    show(header)
    show("-" * len(header))
    for name, e in meta.layers.items():
        shape = f"{e.get('out_features')}x{e.get('in_features')}"
        alpha = "" if e.get("alpha") is None else f"{round(e['alpha'], 3):g}"  # 0.25 from a 5-point grid
        show(f"{name:<52} {e.get('kind', ''):<6} {e['method']:<11} {e['weight_format']:<7} "
             f"{str(e['act_format'] or '16-bit'):<7} {e['rank']:>4} {shape:>13} {alpha:>5} {_fmt(e.get('error')):>9}")
    return 0


def base_model_words(entry: ModelEntry, library: ModelLibrary) -> str:
    """The base pipeline an SVDQ model runs with on this machine, as generate finds it (``resolve_base``), and the
    absolute path the file records where that is not it: a file made elsewhere (the shipped demo-int4: the build
    machine's checkout) records a path that may not exist here, and printed alone it read as the base in use."""
    from gpu.errors import UserError
    from gpu.generation.pipeline_loader import resolve_base
    from gpu.paths import same_file

    recorded = entry.facts.base
    name, path = recorded.get("name") or "unnamed", recorded.get("path")
    stand_in: list[str] = []
    try:
        used = resolve_base(entry.facts, library, None, stand_in)
    except UserError as err:  # no base here (or none that fits): said, while the file itself is inspected
        return f"{name}, none usable on this machine: {err.text}"
    if stand_in:  # none it records is here: the library's pipeline that fits it
        return f"{name}, {used} ({stand_in[0]})"
    if not path or same_file(path, used):
        return f"{name}, {used}"
    where = "which does not exist here" if not Path(path).exists() else "not the one used"
    return f"{name}, {used} (the file records {path}, {where})"


# torch.compile's modes (torch 2.4 and later), listed here as the parser must not import torch (--help, inspect):
# any other was taken, and the benchmark ran and recorded "mode None" where no compiler took it, or failed after
# the model was built where one did
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# The bench options that have a range, as generate's and quantize's ("rank 2000 is not possible: use 0 to 1024"):
# a steps of 0 ended in a StatisticsError traceback, a negative LoRA rank in a RuntimeError one, after the model
# was built. Ranks as the quantizer takes them; steps up to generation's limit.
BENCH_RANGES = {"rank": (0, 1024), "lora_rank": (0, 1024), "iters": (1, 10_000), "steps": (1, 500)}


def check_bench_options(args: argparse.Namespace) -> None:
    """BadRequestError for the first bench option out of its range, naming the option and its range."""
    from gpu.bench import FULL_SIZE_MIN_STEPS
    from gpu.errors import BadRequestError

    for name, (low, high) in BENCH_RANGES.items():
        value, option = getattr(args, name), "--" + name.replace("_", "-")
        hint = f"or leave {option} out for its default"
        if name == "steps" and args.what != "flux":
            continue  # only bench flux times steps: bench kernels ignores the option
        if name == "steps" and not args.tiny:
            low, hint = FULL_SIZE_MIN_STEPS, f"a full-size run times at least {FULL_SIZE_MIN_STEPS}; {hint}"
        if value is not None and not low <= value <= high:
            raise BadRequestError(f"{option} {value} is not possible: use {low} to {high}", hint)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from gpu.errors import BadRequestError
    from gpu.output_folders import make_output_folder

    check_bench_options(args)  # before the GPU check and any model: a typo is said whatever the machine
    if not torch.cuda.is_available() and not (args.what == "flux" and args.tiny):  # else a traceback from torch.cuda
        hint = "run it on a machine with an NVIDIA GPU" + (", or add --tiny to check the plumbing on the CPU"
                                                           if args.what == "flux" else "")  # fmt: skip
        raise BadRequestError(f"bench {args.what} needs a CUDA GPU, and torch sees none", hint)
    make_output_folder(args.out)  # before the benchmark's imports and its run: they write it at the end
    if args.what == "flux":
        from gpu.bench.flux import run as run_flux

        run_flux(args.out, tiny=args.tiny, steps=args.steps, rank=args.rank, compile_mode=args.compile_mode,
                 compile_scope=args.compile_scope, lora_rank=args.lora_rank)  # fmt: skip
        return 0
    from gpu.bench.kernels import run

    run(args.out, rank=args.rank, iters=args.iters)
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def app_installed() -> bool:
    """Whether the desktop app's window module is installed, found without importing it (an engine-only install
    has none): importing it loads Qt, which fails on a server without Qt's system libraries (libEGL, libxkbcommon)."""
    try:
        return importlib.util.find_spec("app.main_window") is not None
    except ModuleNotFoundError:  # no app package at all: finding a submodule imports its package first
        return False


def with_program(argv: list[str]) -> list[str]:
    """``argv`` (the arguments after the program) as Qt takes a command line: the program first. Without it the
    first argument, an image opened with the app, was Qt's program name, and the window's X11 class (the
    .desktop file's StartupWMClass matches it) the image's name."""
    return [sys.argv[0] if sys.argv and sys.argv[0] else "nibble-studio", *argv]


def run_gui(args: argparse.Namespace, argv: list[str]) -> int:
    """Opens the desktop app; with no app package (an engine-only install) prints the help (exit 0), and with no
    display to open its window on (``no_display_for_the_window``) says so (exit 2)."""
    if not app_installed():  # an engine-only install on a headless machine has no window to refuse, only its help
        build_parser().print_help()
        return 0
    # Before the import: Qt's libraries (libEGL, libxkbcommon) are often missing where no display is, as on a GPU
    # server or in a CUDA container, and importing the window there raised ImportError instead of this line
    if no_display_for_the_window():
        print_error(NO_DISPLAY)
        return 2
    try:
        from app.main_window import run_app
    except ModuleNotFoundError as err:
        # Only a part of the app package missing means "no GUI here"; another module whose name begins with
        # "app" (appdirs) missing is a broken install, and its error must be seen.
        if err.name == "app" or (err.name or "").startswith("app."):
            build_parser().print_help()
            return 0
        raise
    # the flag as given, which run_app reads as main reads it (``named_data_dir``): Path() took "./~" for "~", and
    # the app then opened the home folder while the engine had the folder named "~" in the current one
    return run_app(with_program(argv), args.data_dir, getattr(args, "open_files", None))


COMMANDS = {"quantize": cmd_quantize, "generate": cmd_generate, "inspect": cmd_inspect, "bench": cmd_bench}


def tolerate_unencodable_output() -> None:
    """Text that stdout's encoding cannot hold is written escaped (``\\u732b``) instead of raising. On Windows,
    output redirected to a file or a pipe is encoded with the ANSI code page (cp1252), which has no '猫': the line
    naming a batch's first image raised UnicodeEncodeError after it was saved, and the other images never were.
    (stderr escapes by default; None, in a windowed executable, has nothing to change.)"""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    tolerate_unencodable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.self_test and args.command is not None:  # else the sub-command was dropped without a word
            parser.error(f"--self-test takes no sub-command: run 'main.py --self-test' and "
                         f"'main.py {args.command} ...' separately")  # fmt: skip
    except UsageError as err:
        if (args := app_with_file(parser, argv)) is None:
            refuse_usage(err)
    if args.data_dir is not None and (blank := blank_data_dir(args.data_dir)) is not None:
        return refuse_blank_data_dir(args, *blank)  # no folder the app's own start-up dialog could name
    # the default folder checked for the commands that write into it: their log, the library, the self-test report
    if problem := choose_data_dir(args.data_dir, default_needed=args.self_test or args.command in LOGGED_COMMANDS,
                                  default_written=args.self_test):
        print_error(problem)
        if not windowed_app(args):
            return 2
        # with no terminal, the app's own start-up dialog names the folder and why (the line is seen by no one)
    if args.command is None and not args.self_test:
        return run_gui(args, argv)
    from gpu.errors import Cancelled, UserError

    logged, started = False, time.perf_counter()
    try:
        try:
            logged = args.command in LOGGED_COMMANDS and start_log(argv)
            code, message = run_command(args), ""
        except UserError as err:
            code, message = 2, with_failed_note(f"error: {err.text}", args)
        except (Cancelled, KeyboardInterrupt):  # what was kept, where a command says (the images, the parts)
            note = getattr(args, "cancel_note", "")
            code, message = CANCELLED_EXIT, f"error: cancelled{f'; {note}' if note else ''}"
        except BrokenPipeError:  # the reader went away (``inspect … | head -1``): not the user's error
            silence_stdout()
            # what a run stopped by it kept (a batch's images, a quantize run's parts), on stderr and in the log as
            # a Ctrl-C says it: the lines that named them went to the reader that left, or never came
            note = getattr(args, "cancel_note", "") or getattr(args, "failed_note", "")
            code, message = SIGPIPE_EXIT, f"note: stopped, as the reader of its output went away; {note}" if note \
                else ""  # fmt: skip
        except OSError as err:  # a file the command had to read or write, named by the system
            where = f"{err.filename}: " if err.filename else ""
            code, message = 2, with_failed_note(f"error: {where}{err.strerror or err}", args)
        except BaseException:
            if logged:  # a bug: its traceback in the file; Python prints it on the console as it always did
                log.exception("%s crashed after %.1f s", args.command, time.perf_counter() - started)
            # Before the traceback Python prints as the exception leaves: what the run kept is not lost with it
            if note := getattr(args, "failed_note", ""):
                print(note, file=sys.stderr)
            raise
        if message:
            print(message, file=sys.stderr)
        if logged:
            log.log(logging.ERROR if code else logging.INFO, "%s ended: exit %d after %.1f s%s", args.command, code,
                    time.perf_counter() - started, f"; {message}" if message else "")  # fmt: skip
        return code
    finally:
        if args.command in LOGGED_COMMANDS:  # not only when start_log returned: a Ctrl-C inside it, once the
            stop_log()  # file was open, left the handler on the root logger of an in-process caller (tests)


def run_command(args: argparse.Namespace) -> int:
    """Runs the sub-command ``args`` names, or the self-test (``--self-test``, which reports its own failures) ->
    the exit code."""
    from gpu.torch_check import require_torch

    # every command and the self-test run on torch: one that cannot be loaded is said with its remedy (exit 2), not
    # a traceback of imports, nor a self-test "FAILED" (exit 1) that named no way out
    require_torch()
    if args.self_test:  # run where the commands are: a Ctrl-C in it ended in a traceback, killed by the signal
        from gpu.self_test import main as self_test

        return self_test([])
    return COMMANDS[args.command](args)


def with_failed_note(message: str, args: argparse.Namespace) -> str:
    """``message`` (the error's line) and, on a line of its own, what a command that failed kept for the next run
    (``failed_note``: a quantize run's parts), as the wizard says it after a failure's message."""
    note = getattr(args, "failed_note", "")
    return f"{message}\n{note}" if note else message


def silence_stdout() -> None:
    """Points stdout at the null device: Python flushes it at exit, and the broken pipe would raise again there
    ('Exception ignored ... BrokenPipeError'). The idiom of Python's signal documentation."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test's capture, or already closed
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def stop_log() -> None:
    """Closes this run's log file, if one was opened (nothing otherwise)."""
    try:
        from app.app_log import stop_file_log
    except ModuleNotFoundError:  # an engine-only install, where start_log opened nothing
        return
    stop_file_log()


def start_log(argv: list[str]) -> bool:
    """Sends this run's records to the app's log file (``<data folder>/logs/nibble.log``, marked ``cli``) with
    the facts a problem report needs first. False, and nothing printed, when there is no file to write: the
    command runs as it would without one."""
    try:
        from app.app_log import start_cli_log
    except ModuleNotFoundError:  # an engine-only install
        return False
    from gpu.paths import user_data_dir
    from gpu.version import __version__

    try:
        root = user_data_dir()
    except OSError:  # a data folder that cannot be made: the command may still work, or names it itself
        return False
    if start_cli_log(root) is None:
        return False
    frozen = "frozen executable" if getattr(sys, "frozen", False) else "from source"
    log.info("Nibble Studio %s command line (%s); Python %s, %s %s; data folder: %s", __version__, frozen,
             platform.python_version(), platform.platform(), platform.machine(), root)  # fmt: skip
    log.info("command: %s", shlex.join(["main.py", *argv]))
    return True


if __name__ == "__main__":
    sys.exit(main())
