"""Shared fixtures: a per-test data dir, and tiny random FLUX pipelines built once per session."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gpu.generation.service import GenerationService

sys.path.insert(0, str(Path(__file__).parent))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001
    r"""A test's report with its captured output and failure text made UTF-8: tests of file names that are not UTF-8
    log them (``mod\udce9le``), and pytest-xdist cannot send such a string from its worker (the run stopped with an
    INTERNALERROR). Such characters are written escaped (``\udce9``)."""
    report = yield
    report.sections = [(title, _utf8(text)) for title, text in report.sections]
    if report.longrepr is not None and _utf8(str(report.longrepr)) != str(report.longrepr):
        report.longrepr = _utf8(str(report.longrepr))
    return report


def _utf8(text: str) -> str:
    r"""``text`` with every lone surrogate written as its ``\udcXX`` escape; other text unchanged."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test writes user data into its own folder, never the real per-user one."""
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(data))
    return data


@pytest.fixture
def a_gui_can_be_seen(monkeypatch) -> None:
    """Runs as on a desktop, where a dialog is on a screen someone looks at (``main.gui_can_be_seen``): GUI tests run
    offscreen, where the start-up's dialog is left out (it would wait unseen), yet a test accepts it as it shows."""
    import main

    monkeypatch.setattr(main, "gui_can_be_seen", lambda: True)


@pytest.fixture
def deep_path(tmp_path, monkeypatch) -> Iterator[Callable[[int, str], Path]]:
    """``deep_path(levels, name)``: the path ``d/d/…/<name>`` (``levels`` folders ``d``) relative to ``tmp_path``,
    made the current folder, for a test of folders deeper than Python's recursion limit. The test is skipped where
    the file system's path limit cannot hold it (macOS: 1024 bytes). Its tree ``tmp_path/d`` is removed afterwards,
    passed or failed, one level at a time: pytest's clean-up (``shutil.rmtree``, recursive on Python 3.11) cannot
    remove it, and a tree left by a failed test broke later runs."""
    from deep_trees import deep_path_room, remove_tree

    def deep(levels: int, name: str) -> Path:
        if (why := deep_path_room(tmp_path, levels, name)) is not None:
            pytest.skip(why)
        return Path("d/" * levels + name)

    monkeypatch.chdir(tmp_path)
    yield deep
    remove_tree(tmp_path / "d")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    from tiny_flux import make_tiny_flux

    return make_tiny_flux(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_flux_int4(tiny_flux, tmp_path_factory) -> Path:
    """The tiny pipeline quantized with SVDQuant INT4 (rank 32) through the public quantizer, with
    ``QUICK_CALIBRATION``; shared by every test that reads it (copy it before changing it)."""
    from tiny_flux import QUICK_CALIBRATION

    from gpu.library import ModelLibrary
    from gpu.quantizer import QuantizeConfig, quantize_model

    out = tmp_path_factory.mktemp("q") / "tiny-int4.safetensors"
    lib = ModelLibrary(tmp_path_factory.mktemp("libdata"))
    return quantize_model(tiny_flux, out, QuantizeConfig(**QUICK_CALIBRATION), library=lib)


@pytest.fixture(scope="module")
def cpu_service() -> Iterator[GenerationService]:
    """The engine on the CPU, run on one thread (two spin-wait on the shared 2-core machines), for a module's tests."""
    import torch

    from gpu.generation.service import GenerationService

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield GenerationService(device=torch.device("cpu"))
    torch.set_num_threads(threads)


@pytest.fixture
def tensor_reads(monkeypatch) -> list[str]:
    """The names of the LoRA files whose tensor data is read (``read_lora``'s one pass over the data, on whichever
    thread: the app's engine's too), noted: a file judged from its header alone is never in it."""
    import gpu.lora.formats

    read, real = [], gpu.lora.formats.read_opened

    def noted(f, name, *args, **kwargs):
        read.append(name)
        return real(f, name, *args, **kwargs)

    monkeypatch.setattr(gpu.lora.formats, "read_opened", noted)
    return read
