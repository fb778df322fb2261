"""The self-test's report file (self-test.txt in the data folder) is user data: a write that fails half way (a full
disk) left it truncated, the last run's report lost, and nothing was said. It is written atomically now, and a
report that cannot be written is said."""

from __future__ import annotations

import errno
from pathlib import Path

import gpu.self_test
from gpu.self_test import REPORT_FILE, SelfTestResult


def _disk_full_after_truncating(monkeypatch) -> None:
    """Every write of a whole file opens (and so truncates) its file, then fails as a full disk does."""

    def write(self: Path, *_args, **_kwargs) -> int:
        self.open("wb").close()
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", write)
    monkeypatch.setattr(Path, "write_bytes", write)


def test_a_report_that_cannot_be_written_keeps_the_last_one_and_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(gpu.self_test, "run_self_test",
                        lambda model, out, echo: SelfTestResult(ok=True, lines=["PASS  today's run"]))  # fmt: skip
    (tmp_path / REPORT_FILE).write_text("PASS  yesterday's run\n", encoding="utf-8")
    _disk_full_after_truncating(monkeypatch)
    assert gpu.self_test.main([]) == 0  # the check itself passed: the report is a by-product
    assert (tmp_path / REPORT_FILE).read_bytes() == b"PASS  yesterday's run\n"
    out = capsys.readouterr().out
    assert f"report not written to {tmp_path / REPORT_FILE}" in out and "No space left on device" in out
    assert [p.name for p in tmp_path.iterdir()] == [REPORT_FILE]  # no scratch file left beside it

    monkeypatch.undo()
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path))
    failed = SelfTestResult(ok=False, lines=["FAIL  stra\udcdfnge path"])  # a path whose bytes are no UTF-8
    monkeypatch.setattr(gpu.self_test, "run_self_test", lambda model, out, echo: failed)
    assert gpu.self_test.main([]) == 1
    assert (tmp_path / REPORT_FILE).read_text(encoding="utf-8") == "FAIL  stra\\udcdfnge path\n"
