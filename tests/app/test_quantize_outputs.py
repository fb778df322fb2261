"""The wizard's output names and unfinished runs (``app.quantize_outputs``), decided by the engine's own resume
decision (``gpu.streaming.resume.resumes_from``), and what the wizard says of a full disk."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from app.quantize_outputs import (
    delete_unfinished_run,
    free_output_path,
    output_name,
    resume_key,
    running_output,
    unfinished_runs,
)
from gpu.errors import Cancelled, OutputBusy, OutputError
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model  # before gpu.streaming.engine (circular otherwise)
from gpu.streaming.parts_folder import parts_dir
from gpu.streaming.unfinished import UnfinishedRun

DEMO = resources_dir() / "models" / "demo"


def _cfg() -> QuantizeConfig:
    return QuantizeConfig(calib_prompts=2, calib_steps=2, max_tokens_per_layer=256, refine_iters=1, alpha_points=3,
                          rank=8)  # fmt: skip


def test_a_name_whose_run_would_start_over_is_not_offered(data_root, tmp_path):
    """The name of a stopped run was offered again when its quantization settings matched, though its source's
    files had changed since (moved, copied again, touched): the run then deleted the finished blocks to start
    over. A name is free only when the engine would resume there."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    models = tmp_path / "models"
    out = models / "m.safetensors"
    with pytest.raises(Cancelled):  # stopped once its first block is finished
        quantize_model(source, out, _cfg(), should_cancel=lambda: _blocks_done(out) >= 1, device=torch.device("cpu"))
    assert free_output_path(models, "m", str(source), _cfg()) == out  # the same run: it resumes
    weights = source / "transformer" / "diffusion_pytorch_model.safetensors"
    # written again a minute later (within 2 s it counts as the same file, as a copy onto FAT or exFAT keeps it)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 60 * 10**9))
    notes: list[str] = []
    assert free_output_path(models, "m", str(source), _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"m.safetensors.parts holds the blocks of an earlier run made with other settings. They stay in "
                     f"{models} and resume when you run with that run's settings (it differs: other source weights "
                     "(another model, or its files changed since)); this run writes a name of its own. Unfinished "
                     "runs… on the calibration page lists it, to delete."]  # fmt: skip
    [run] = unfinished_runs(models, str(source), _cfg())
    assert run.output == out and run.blocks_done == 1 and run.resumes is False


def test_an_earlier_versions_run_its_times_cannot_prove_is_said_to_resume_never(data_root, tmp_path):
    """A parts folder of the key before the digest, whose source has whole-second times, resumes no run (its files
    cannot be proven the ones its blocks were made from), though nothing differs that can be seen: the log said it
    differs in "other source weights (another model, or its files changed since)" and resumes with that run's
    settings, neither of which is true of the very same files."""
    from gpu.streaming.resume import UNPROVEN
    from tests.test_streaming_quantizer import _as_the_earlier_version_wrote, _folder

    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    for f in (f for f in source.rglob("*") if f.is_file()):  # as unpacked from an archive
        os.utime(f, ns=(f.stat().st_atime_ns, 1_763_000_001 * 10**9))
    models = tmp_path / "models"
    key = resume_key(str(source), _cfg())
    earlier = _as_the_earlier_version_wrote(key.settings, _cfg(), [Path(f) for f in key.weight_files])
    _folder(parts_dir(models / "m.safetensors"), earlier, done={"transformer_blocks.0": "0" * 64})
    notes: list[str] = []
    assert free_output_path(models, "m", str(source), _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"m.safetensors.parts holds the blocks of an earlier run, which no run resumes: {UNPROVEN}. "
                     f"They stay in {models}; this run writes a name of its own. Unfinished runs… on the "
                     "calibration page lists it, to delete."]  # fmt: skip
    [run] = unfinished_runs(models, str(source), _cfg())
    assert run.resumes is False and run.differs == UNPROVEN


def _blocks_done(out: Path) -> int:
    try:
        return len(json.loads((parts_dir(out) / "manifest.json").read_bytes())["done"])
    except (OSError, ValueError, KeyError):
        return 0


def _not_offered(models: Path, stem: str, why: str) -> UnfinishedRun:
    """Checks that a demo run is not offered ``stem``'s name, whose parts folder it would not resume, and that the log
    says ``why`` -> that folder's run, as listed (the only one in ``models``)."""
    notes: list[str] = []
    assert free_output_path(models, stem, "demo", _cfg(), notes) == models / f"{stem}-2.safetensors"
    assert notes == [f"{stem}.safetensors.parts {why} It stays in {models}; this run writes a name of its own. "
                     "Unfinished runs… on the calibration page lists it, to delete."]  # fmt: skip
    [run] = unfinished_runs(models, "demo", _cfg())
    return run


def test_a_run_of_another_version_is_listed_and_deleted_and_its_name_is_free_again(data_root, tmp_path):
    """A parts folder of another version of the quantizer took its name for ever (no run of this version resumes
    it) and stayed, GiBs, in the hidden models folder. It is listed, and deleted when asked, but never while a run
    of this window has it as its output, even one still waiting for its turn (the engine locks it only then)."""
    models = tmp_path / "models"
    out = models / "demo-x.safetensors"
    parts = parts_dir(out)
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": "old", "done": {"transformer_blocks.0": {}}}))
    (parts / "block-0000.safetensors").write_bytes(b"x" * 4096)
    run = _not_offered(models, "demo-x", "holds the blocks of a run of another version of the quantizer, which this "
                       "version cannot resume.")  # fmt: skip
    assert (run.output, run.blocks_done, run.resumes) == (out, 1, False)
    assert run.differs == "another version of the quantizer"
    assert run.size_bytes == 4096 + (parts / "manifest.json").stat().st_size
    with running_output(out), pytest.raises(OutputBusy, match="a quantize run of this window writes demo-x"):
        delete_unfinished_run(run)
    assert parts.is_dir()
    delete_unfinished_run(run)
    assert not parts.exists() and unfinished_runs(models) == []
    assert free_output_path(models, "demo-x", "demo", _cfg()) == out


def _resumable(parts: Path, key) -> Path:
    """A stopped run's parts folder that a run with resume key ``key`` resumes (its manifest, no block yet)."""
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": key.key, "settings": key.settings, "done": {}}))
    return parts


def test_the_name_of_a_stopped_run_the_settings_resume_is_taken_before_a_free_one(data_root, tmp_path):
    """The first free name was taken, though a stopped run of the same settings waited in a numbered name (the
    plain name's run deleted since, or a model written there): the run started over in the free name, and the
    stopped run's blocks were never resumed. The name whose run resumes comes first; a model file of that name is
    never replaced."""
    models = tmp_path / "models"
    key = resume_key("demo", _cfg())
    assert key is not None
    _resumable(models / "m-3.safetensors.parts", key)
    assert free_output_path(models, "m", "demo", _cfg()) == models / "m-3.safetensors"
    _resumable(models / "m-2.safetensors.parts", key)
    (models / "m-2.safetensors").write_bytes(b"a model of that name")
    assert free_output_path(models, "m", "demo", _cfg()) == models / "m-3.safetensors"
    other = _cfg()
    other.seed = 1  # other settings: neither run resumes, and the first free name is taken
    assert free_output_path(models, "m", "demo", other) == models / "m.safetensors"
    assert free_output_path(models, "other", "demo", _cfg()) == models / "other.safetensors"


def test_a_stopped_nf4_run_named_with_its_precision_is_resumed_under_its_name(data_root, tmp_path):
    """The wizard named NF4 runs ``<model>-nf4-int4`` or ``-nf4-int8`` before their names left out the precision
    (NF4 is NF4 whatever it is): such a stopped run was listed as resumed by the settings (NF4's resume key has no
    precision), yet a run started over in ``<model>-nf4``. It is resumed under its own name, whichever precision is
    chosen now; a stopped run of the name given now comes first."""
    models = tmp_path / "models"
    int8 = _cfg()
    int8.method, int8.precision = "nf4", "int8"
    key = resume_key("demo", int8)
    assert key is not None
    _resumable(models / "demo-nf4-int8.safetensors.parts", key)
    chosen = _cfg()
    chosen.method = "nf4"  # precision int4 now
    stem = output_name("demo", chosen)
    assert stem == "demo-nf4"
    assert unfinished_runs(models, "demo", chosen)[0].resumes is True  # as the Unfinished runs dialog says it
    assert free_output_path(models, stem, "demo", chosen) == models / "demo-nf4-int8.safetensors"
    _resumable(models / "demo-nf4-2.safetensors.parts", key)
    assert free_output_path(models, stem, "demo", chosen) == models / "demo-nf4-2.safetensors"
    # another method's name never takes a precision's name of its own stem's: only NF4's names left it out
    svd = _cfg()
    stem = output_name("demo", svd)
    _resumable(models / f"{stem}-int4.safetensors.parts", resume_key("demo", svd))
    assert free_output_path(models, stem, "demo", svd) == models / f"{stem}.safetensors"


def test_a_parts_folder_without_a_manifest_leaves_its_name_free_only_when_it_holds_nothing(data_root, tmp_path):
    """A parts folder without a (readable) manifest was "a run of another version of the quantizer", its name
    taken. It resumes nothing: its name is free when the run, discarding it, loses nothing (what a killed run
    leaves); a deletion cut short (the manifest goes first) left finished blocks, which are not the run's to delete
    unasked: the name stays taken, and the folder is listed, to delete."""
    from gpu.streaming.resume import NO_MANIFEST

    models = tmp_path / "models"
    parts = models / "m.safetensors.parts"
    parts.mkdir(parents=True)
    (parts / ".tmpAb12Cd").write_bytes(b"half a file")
    assert free_output_path(models, "m", "demo", _cfg()) == models / "m.safetensors"
    (parts / "block-0004.safetensors").write_bytes(b"x" * 100)
    run = _not_offered(models, "m", f"has {NO_MANIFEST}, but holds files of an earlier run.")
    assert (run.output, run.resumes, run.differs) == (models / "m.safetensors", False, NO_MANIFEST)


def test_a_source_that_fails_to_read_in_any_way_leaves_the_error_to_the_run(data_root, tmp_path):
    """A source whose transformer config holds "num_layers": "2" raised a TypeError on the GUI thread as the wizard
    started its run (only the user's errors were caught). The resume key is then unknown, and the run reports the
    error."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    config = source / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_layers": "2"}))
    assert resume_key(str(source), _cfg()) is None
    assert free_output_path(tmp_path / "models", "m", str(source), _cfg()) == tmp_path / "models" / "m.safetensors"


def test_a_full_disk_the_engine_reports_is_said_as_one(tmp_path):
    """safetensors reports a full disk in its text only ("... (os error 28)"): the wizard told the user to make
    the models folder writable. The engine's run now says it as a full disk, which the wizard tells as such."""
    from safetensors import SafetensorError

    from app.quantize_worker import run_error
    from gpu.atomic import output_errors
    from gpu.streaming.disk_space import disk_full_said

    code = 112 if os.name == "nt" else 28
    with pytest.raises(Exception) as failed, disk_full_said(tmp_path, lambda: ""), output_errors(tmp_path / "o"):
        raise SafetensorError(f"Error while serializing: I/O error: No space left on device (os error {code})")
    error, settings_can_fix = run_error(failed.value, tmp_path)
    assert error.message.startswith(f"the disk holding {tmp_path} is full") and not settings_can_fix
    assert "free some space on its disk" in error.hint


def test_the_wizards_output_checks_take_back_the_folders_they_made(tmp_path, monkeypatch):
    """The wizard's quick refusals made the output's folder with mkdir(parents=True), kept however they ended: a run
    refused for its disk space left a models folder the user had not had. They are made as the engine makes every
    output folder (``gpu.output_folders.make_output_folder``) and taken back; a file in the way is said as one."""
    from app.quantize_worker import QuantizeJob, QuantizeWorker
    from gpu.errors import OutputError
    from gpu.streaming.disk_space import DiskSpaceError

    models = tmp_path / "new" / "models"
    job = QuantizeJob(str(DEMO), models / "m.safetensors", _cfg())
    usage = shutil.disk_usage(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=2**20))
        with pytest.raises(DiskSpaceError, match=f"^not enough free disk space in {re.escape(str(models))}: "):
            QuantizeWorker._check_output(job)
    assert sorted(tmp_path.iterdir()) == []  # was: new/models, made for the refused run
    QuantizeWorker._check_output(job)  # passed: the run's own lock makes the folders again
    assert sorted(tmp_path.iterdir()) == []

    (tmp_path / "new").write_bytes(b"")  # was: "cannot write …/new/models: File exists"
    with pytest.raises(OutputError, match="^cannot write the model into .*: .*new is a file, not a folder$"):
        QuantizeWorker._check_output(job)


def test_a_wizard_output_deeper_than_pythons_recursion_limit_is_checked(deep_path):
    """pathlib's mkdir(parents=True) recurses once per folder: a models folder 1100 deep (a --data-dir that deep)
    raised RecursionError in the wizard's checks, no OSError, which its error path takes for an internal error."""
    from app.quantize_worker import QuantizeJob, QuantizeWorker

    out = deep_path(1100, "m.safetensors")
    QuantizeWorker._check_output(QuantizeJob(str(DEMO), out, _cfg()))
    assert not Path("d").exists()  # made for the checks, and taken back


def test_a_parts_folder_holding_the_users_files_takes_its_name(data_root, tmp_path):
    """A parts folder without a manifest whose only file was the user's was taken to lose nothing when discarded
    (``discards_nothing``): the wizard offered its name, and the run then refused the folder, a failed run. The
    wizard writes a name of its own beside it, and says why."""
    models = tmp_path / "models"
    parts = models / "m.safetensors.parts"
    parts.mkdir(parents=True)
    (parts / "notes.txt").write_text("the user's")
    notes: list[str] = []
    assert free_output_path(models, "m", "demo", _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"{parts} holds files the quantizer did not write (notes.txt); it would delete them with its "
                     "parts folder: this run writes a name of its own."]  # fmt: skip


def test_a_refused_deletion_says_not_deleted_once_and_never_to_delete_a_folder_a_run_writes(tmp_path):
    """Shown in the open wizard too since e2eeff4, a refusal said "was not deleted: … : not deleted" (the user's
    files), or "was not deleted: old.safetensors.parts is not deleted: …" with "wait for that run to end, or cancel
    it, then delete it again …, or delete the folder yourself": the folder a working run writes into, and the run
    page's button says Stop. (R52)"""
    import app.quantize_outputs as outputs
    from app.quantize_outputs import delete_unfinished_run, not_deleted, unfinished_runs

    models = tmp_path / "models"
    parts = parts_dir(models / "old.safetensors")
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": "k", "done": {}}))
    [run] = unfinished_runs(models)
    outputs._running.add(run.output)  # a run of this window writes it
    try:
        with pytest.raises(OutputBusy) as busy:
            delete_unfinished_run(run)
    finally:
        outputs._running.discard(run.output)
    said = not_deleted(run, busy.value)
    assert said.message.startswith("The unfinished quantize run old.safetensors was not deleted: a quantize run of "
                                   "this window writes old.safetensors.")  # fmt: skip
    assert said.hint == ("Wait for that run to end, or stop it, then delete it again with Unfinished runs… on the "
                         "calibration page of Quantize this model….")  # fmt: skip
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(OutputError) as foreign:
        delete_unfinished_run(run)
    said = not_deleted(run, foreign.value)
    assert said.message.count("not deleted") == 1 and "(notes.txt). Its folder" in said.message, said.message
    assert said.hint.endswith(", or delete the folder yourself."), said.hint
