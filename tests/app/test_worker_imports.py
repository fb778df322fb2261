"""The app's worker threads import diffusers and transformers at the same time without failing."""

from __future__ import annotations

import os
import subprocess
import sys

from gpu.paths import resources_dir
from tests.bfl_files import save_bfl_transformer

_BOTH_AT_ONCE = """
import sys, threading
from pathlib import Path
from PySide6.QtCore import QCoreApplication, Qt
from app.data_dir import resolve_data_dir
from app.engine_worker import EngineWorker
from app.quantize_worker import QuantizeWorker

import torch  # as in the app by then: both threads go straight to diffusers
qt = QCoreApplication([])
engine, quantize = EngineWorker(resolve_data_dir(Path(sys.argv[1]))), QuantizeWorker()
checked, failures = [], []
direct = Qt.ConnectionType.DirectConnection  # no event loop runs here
quantize.file_checked.connect(lambda path, problem: checked.append(problem), type=direct)

engine.failed.connect(lambda job, error: failures.append(error.text), type=direct)
engine.describe_failed.connect(lambda asked, error: failures.append(error.text), type=direct)
# The engine's first work: the model's facts and its prompt meter (a transformers tokenizer)
go = [threading.Thread(target=engine.describe, args=("demo",)),
      threading.Thread(target=quantize.check_file, args=(sys.argv[2],))]
for thread in go:
    thread.start()
for thread in go:
    thread.join()
print("checked", checked, "failures", failures)
"""


def test_the_engine_and_the_wizards_file_check_import_the_model_libraries_at_once(tmp_path):
    """The engine thread's first work (a model's prompt meter: a transformers tokenizer) while the quantize wizard
    checked a single-file checkpoint (diffusers' FLUX transformer) on its own thread: diffusers' and transformers'
    lazy names are not safe to resolve from two threads at once, and the check said "Something went wrong: ...
    cannot import name 'AutoModel' from 'transformers'" (every time here before gpu.model_libraries; in the app,
    when the wizard was opened on a file while the window was starting)."""
    single = save_bfl_transformer(resources_dir() / "models" / "demo", tmp_path / "single.safetensors")
    out = subprocess.run([sys.executable, "-c", _BOTH_AT_ONCE, str(tmp_path / "data"), str(single)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "checked [''] failures []", out.stdout[-2000:]
