"""Device tests of the fused kernels: skipped unless CUDA and pycuda are both present."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import pytest
import torch


def gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed"
    if torch.cuda.get_device_capability() < (7, 5):
        return "GPU older than sm_75 (no 4-bit tensor-core MMA)"
    return None


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    reason = gpu_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


# What the device tests measured beside their assertions (errors against their bounds, the paths dispatch took,
# the seeds): (where, line) in the order added, printed after the run by ``pytest_terminal_summary``.
_REPORT = pytest.StashKey[list[tuple[str, str]]]()


def _add_report_line(config: pytest.Config, where: str, line: str) -> None:
    config.stash.setdefault(_REPORT, []).append((where, line))


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: a line for the report printed at the end of the run, under the test's file."""
    return lambda line: _add_report_line(request.config, request.node.nodeid, line)


@pytest.fixture(scope="module")
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    """A generator with a fresh seed each run (inputs differ between runs); the seed is in the report, for
    reproduction."""
    seed = int.from_bytes(os.urandom(4), "little")
    _add_report_line(request.config, request.node.nodeid, f"seed {seed}")
    return torch.Generator().manual_seed(seed)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config  # noqa: ARG001
) -> None:
    """The report lines of the run's device tests, grouped by test file (in the order they were added)."""
    lines = config.stash.get(_REPORT, [])
    if not lines:
        return
    terminalreporter.section("device test report")
    by_file: dict[str, list[str]] = {}
    for where, line in lines:
        by_file.setdefault(where.split("::")[0], []).append(line)
    for path, file_lines in by_file.items():
        terminalreporter.write_line(path)
        for line in file_lines:
            terminalreporter.write_line(f"  {line}")
