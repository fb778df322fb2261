"""The streaming engine on the trained demo FLUX (2 double + 4 single blocks): equal to the in-memory
quantizer, resumable after a cancel, never reusing parts made with other settings, never listing a partial."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from gpu.checkpoint.format import load_checkpoint, read_checkpoint_meta
from gpu.errors import Cancelled, ModelLoadError
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model, quantize_model_in_memory
from gpu.streaming.parts_folder import ENGINE_VERSION, parts_dir
from gpu.streaming.resume import ResumeKey, resumes_from, settings_key
from gpu.streaming.run_inputs import resume_key
from tests.bfl_files import pipeline_copy, save_bfl_transformer

DEMO = resources_dir() / "models" / "demo"
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """These tests compare quantizer runs bit for bit. Multi-threaded CPU bf16 matmuls are not bit-reproducible
    run to run on every machine: on a 16-core Xeon with AMX (torch 2.11, 2026-11-22) two identical runs gave
    calibration activations one bf16 step apart in 24 of 52 layers, and now and then another α for a layer;
    with one thread, and on CUDA, runs were identical. The tests check the engine's logic, so they run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(**kw) -> QuantizeConfig:
    # Three alphas (0, 0.5, 1), not 11: these tests check resuming, equality and refusals, which any grid shows;
    # the search over 11 was most of every run's time (the wizard's tests run the default grid).
    return QuantizeConfig(calib_prompts=2, calib_steps=3, timesteps_per_prompt=2, max_tokens_per_layer=256,
                          refine_iters=1, alpha_points=3, **kw)  # fmt: skip


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _same(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), k
    ma, mb = read_checkpoint_meta(a), read_checkpoint_meta(b)
    for field in ("layers", "quantization", "calibration", "model_config", "dtype", "scheduler"):
        assert getattr(ma, field) == getattr(mb, field), field


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s") / "demo-int4.safetensors"
    return quantize_model(DEMO, out, _cfg(), library=ModelLibrary(tmp_path_factory.mktemp("lib")), device=CPU)


def test_streaming_equals_in_memory(streamed, tmp_path):
    ref = quantize_model_in_memory(DEMO, tmp_path / "ref.safetensors", _cfg(), library=ModelLibrary(tmp_path),
                                   device=CPU)  # fmt: skip
    _same(streamed, ref)
    meta, _ = load_checkpoint(streamed)  # checksum verified
    assert meta.calibration["samples"] == 2 * 2 * 2  # prompts x timesteps x (prompt, empty prompt) under true CFG
    assert not parts_dir(streamed).exists()
    # The scheduler its calibration ran, and its base runs (a stand-in base's may be another): the model runs with it
    demo = json.loads((DEMO / "scheduler" / "scheduler_config.json").read_text())
    assert meta.scheduler["class"] == demo["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert meta.scheduler["config"] == {**meta.scheduler["config"], **{k: v for k, v in demo.items() if k[0] != "_"}}
    assert (meta.scheduler["config"]["shift"], meta.scheduler["config"]["use_dynamic_shifting"]) == (3.0, True)


def test_shared_input_groups_share_smoothing_so_the_fused_model_merges(streamed):
    """The default quantizer output (shared smoothing per Q/K/V group) is what the fused runtime merges."""
    from gpu.adapters.flux import FLUX
    from gpu.checkpoint.skeleton import load_quantized_transformer
    from gpu.models.flux_fused import fuse_flux_transformer

    model, meta = load_quantized_transformer(streamed)
    groups = FLUX.shared_input_groups(meta.layers)
    assert len(groups) == 2 * 2 + 4  # demo: 2 double blocks (image, text), 4 single blocks
    for group in groups:
        assert all(meta.layers[n]["smooth_group"] == group for n in group)
        first = model.get_submodule(group[0]).smooth
        assert all(torch.equal(model.get_submodule(n).smooth, first) for n in group[1:])
    assert not torch.equal(model.get_submodule("transformer_blocks.0.attn.to_q").smooth,
                           model.get_submodule("transformer_blocks.0.attn.to_out.0").smooth)  # fmt: skip
    fuse_flux_transformer(model)
    assert model.fusion_report["merged"] == len(groups) and model.fusion_report["kept_separate"] == 0


@pytest.fixture
def mapped_at_removal(monkeypatch) -> list[str]:
    """The files under the parts folder still memory-mapped when the engine removes it: Windows refuses to delete
    a mapped file, so a run that left one mapped failed at its very end there (Linux deletes it anyway)."""
    import gpu.streaming.engine as engine

    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    seen: list[str] = []
    remove = engine.remove_finished_parts

    def looking_first(parts: Path, out: Path) -> str:
        seen.extend(line.split()[-1] for line in maps.read_text().splitlines() if str(parts) in line)
        return remove(parts, out)

    monkeypatch.setattr(engine, "remove_finished_parts", looking_first)
    return seen


def _scratch(parts: Path) -> list[str]:
    """The spilled block inputs (``act``, ``act0``, ``act1``) in the parts folder."""
    return sorted(p.name for p in parts.iterdir() if p.name.startswith("act")) if parts.is_dir() else []


def test_a_run_whose_activations_spill_to_disk_gives_the_same_output(streamed, tmp_path, monkeypatch,
                                                                     mapped_at_removal):  # fmt: skip
    """The spilled block inputs (several GiB at FLUX size) stayed in the parts folder until after the final
    write, which most needs the space, and forever after a cancelled or failed run, though resume never reads
    them. They now go after the last block and at once on a cancel, the finished blocks kept for the resume."""
    import gpu.streaming.engine as engine
    from gpu.streaming.activation_store import ActivationStore

    out = tmp_path / "spilled.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    spilled: list[str] = []  # seen in the parts folder while the run works
    spill_peak = [0]  # the most bytes of spilled inputs on disk at once

    def put(store, i, h, e, original=ActivationStore.put) -> None:
        original(store, i, h, e)
        if store.spill is None:  # the calibration trajectories' own store, in RAM
            return
        spilled.append(store.spill.name)
        assert len(_scratch(parts)) <= 2  # the inputs being read and the outputs being written, no third set
        on_disk = sum(f.stat().st_size for name in _scratch(parts) for f in (parts / name).iterdir())
        spill_peak[0] = max(spill_peak[0], on_disk)

    monkeypatch.setattr(ActivationStore, "put", put)
    needs = _disk_space_asked(monkeypatch)
    manifest = _partial_with(out, 2, lib, _cfg(ram_budget_gib=1e-6))  # cancelled before its third block
    assert {"act", "act0", "act1"} <= set(spilled) and _scratch(parts) == []
    assert resumes_from(parts, resume_key(DEMO, _cfg(), lib, CPU)) is True
    assert resumes_from(parts, resume_key(DEMO, _cfg(rank=8), lib, CPU)) is False
    assert len(manifest["done"]) == 2  # what resume needs stays
    samples_size = (parts / "samples.safetensors").stat().st_size
    kept_size = sum((parts / f"block-000{i}.safetensors").stat().st_size for i in (0, 1))
    (parts / "act1").mkdir()  # as a killed run leaves it
    (parts / "act1" / "0.safetensors").write_bytes(b"x" * 1000)
    # A link of a scratch folder's name stayed (rmtree refuses links), and the run spilled into where it leads.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("the user's")
    (parts / "act").symlink_to(elsewhere, target_is_directory=True)
    at_final_write: list[list[str]] = []
    save_checkpoint = engine.save_checkpoint

    def looking_first(path, tensors, meta, **kw) -> None:
        at_final_write.append(_scratch(parts))
        save_checkpoint(path, tensors, meta, **kw)

    monkeypatch.setattr(engine, "save_checkpoint", looking_first)
    at_start: list[list[str]] = []  # before the samples are read or recorded again, which need the room
    load_head = engine.load_head
    monkeypatch.setattr(engine, "load_head", lambda *a: at_start.append(_scratch(parts)) or load_head(*a))
    events = []
    quantize_model(DEMO, out, _cfg(ram_budget_gib=1e-6), events.append, library=lib, device=CPU)
    assert any("resuming: 2/6" in e.message for e in events)
    assert at_start == [[]] and at_final_write == [[]]
    assert [p.name for p in elsewhere.iterdir()] == ["notes.txt"]
    _same(out, streamed)
    assert not parts.exists() and mapped_at_removal == []
    # The disk space each run was checked for (before it wrote anything) was what it then wrote, or a little more:
    # the model file, the samples, the two sets of spilled inputs at their peak; the resumed run, less its 2 blocks.
    fresh, resumed = needs
    size = out.stat().st_size
    assert size <= fresh.model <= 1.05 * size and resumed.model == fresh.model
    assert samples_size <= fresh.samples <= 1.05 * samples_size and resumed.samples == 0
    assert spill_peak[0] <= fresh.spill == resumed.spill <= 1.05 * spill_peak[0]
    assert fresh.blocks < fresh.model and kept_size <= fresh.blocks - resumed.blocks <= 1.05 * kept_size


def _disk_space_asked(monkeypatch) -> list:
    """The ``SpaceNeeded`` each run checks the free disk space for (the real check still made)."""
    import gpu.streaming.engine as engine

    needs = []
    check = engine.check_free_space
    monkeypatch.setattr(engine, "check_free_space",
                        lambda folder, need, *freed: needs.append(need) or check(folder, need, *freed))  # fmt: skip
    return needs


def test_cancel_then_resume_gives_identical_output(streamed, tmp_path, mapped_at_removal):
    out = tmp_path / "resumed.safetensors"
    blocks_done = []

    def cancel_after_two() -> bool:
        return len(blocks_done) >= 2

    def on_event(ev) -> None:
        if ev.kind == "layer" and ev.layer.endswith(("ff_context.net.2", "single_transformer_blocks.0.proj_out")):
            blocks_done.append(ev.layer)  # last layer of a double block / the first single block

    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(), on_event, cancel_after_two, library=ModelLibrary(tmp_path), device=CPU)
    parts = parts_dir(out)
    manifest = json.loads((parts / "manifest.json").read_text())
    assert 1 <= len(manifest["done"]) < 6 and not out.exists()
    # A partial result is never a model: not listed, not loadable.
    lib = ModelLibrary(tmp_path / "lib")
    lib_names = [e.name for e in lib.entries()]
    assert all("resumed" not in n for n in lib_names)
    with pytest.raises(ModelLoadError):
        lib.add(parts)
    events = []
    quantize_model(DEMO, out, _cfg(), events.append, library=ModelLibrary(tmp_path), device=CPU)
    assert any("resuming" in e.message for e in events)
    layers = [e for e in events if e.kind == "layer"]
    assert layers[0].layer not in blocks_done  # finished blocks are skipped
    # Each layer says its block and the block count as fields (the wizard read them from the message's text).
    assert layers[0].block > 1 and all(e.blocks == 6 and e.message.startswith(f"block {e.block}/6 ") for e in layers)
    _same(out, streamed)
    assert not parts.exists() and mapped_at_removal == []  # the resumed run read its samples from the parts


def test_stale_parts_for_other_settings_are_discarded(tmp_path):
    out = tmp_path / "x.safetensors"
    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(rank=8), should_cancel=_after_calls(40), library=ModelLibrary(tmp_path),
                       device=CPU)  # fmt: skip
    old = json.loads((parts_dir(out) / "manifest.json").read_text())
    assert old["done"]
    events = []
    with pytest.raises(Cancelled):  # stopped while recording its samples: the old parts stay as they were
        quantize_model(DEMO, out, _cfg(rank=16), events.append, _after_calls(1), library=ModelLibrary(tmp_path),
                       device=CPU)  # fmt: skip
    assert json.loads((parts_dir(out) / "manifest.json").read_text()) == old
    assert not any("starting over" in e.message for e in events)  # it was said here, the parts kept
    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(rank=16), events.append, _once_replaced(out, old["key"]),
                       library=ModelLibrary(tmp_path), device=CPU)  # fmt: skip
    new = json.loads((parts_dir(out) / "manifest.json").read_text())
    assert new["key"] != old["key"] and not new["done"]
    assert not any("resuming" in e.message for e in events)
    # The user is told why the finished blocks were thrown away.
    assert "x.safetensors.parts was made with other settings (rank 8 -> 16): starting over" in [
        e.message for e in events
    ]


def test_a_run_asked_to_start_over_says_what_it_deletes_and_deletes_it_only_once_its_samples_exist(tmp_path):
    """``QuantizeConfig.resume`` False (``main.py quantize --no-resume``) deleted the parts folder of the same output
    without a word, the finished blocks a run with these settings resumes from included. It says at once what goes
    and when: the folder goes as any stale one does, once the run has its samples (stopped before, it is as it
    was), and the run then starts over, resuming nothing."""
    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    old = _partial(out, 1, lib)
    manifest = parts / "manifest.json"
    assert len(old["done"]) == 1
    told = (f"starting over, as asked: {parts} is deleted once the calibration samples are recorded, and with it the "
            "finished block a run with these settings resumes from; a run stopped before then leaves it as it is")
    events = []
    with pytest.raises(Cancelled):  # stopped while recording its samples
        quantize_model(DEMO, out, _cfg(resume=False), events.append, _after_calls(1), library=lib, device=CPU)
    assert [e.message for e in events if "as asked" in e.message] == [told]
    assert json.loads(manifest.read_text()) == old  # as it was: a run of these settings still resumes from it

    events = []
    with pytest.raises(Cancelled):  # stopped once it has put its own parts in place
        quantize_model(DEMO, out, _cfg(resume=False), events.append, lambda: not json.loads(manifest.read_text())[
            "done"], library=lib, device=CPU)  # fmt: skip
    said = [e.message for e in events]
    assert said[said.index(told) + 1:].count("deleting o.safetensors.parts: starting over, as asked") == 1
    assert not any("resuming" in m for m in said)
    new = json.loads(manifest.read_text())
    assert new["key"] == old["key"] and new["done"] == {} and new["samples"] == old["samples"]  # recorded again

    from gpu.streaming.replaced_parts import asked_to_start_over  # what the other folders are said to hold

    done = {"transformer_blocks.0": {"file": "block-0000.safetensors", "sha256": "0" * 64}}
    ranked = _folder(tmp_path / "r.safetensors.parts", _key(QuantizeConfig(rank=8)).settings, done)
    assert asked_to_start_over(ranked, json.loads((ranked / "manifest.json").read_text()), _key(QuantizeConfig())) \
        .endswith("and with it the finished block of an earlier run, which this run would not resume (rank 8 -> 32); "
                  "a run stopped before then leaves it as it is")  # fmt: skip
    (ranked / "manifest.json").unlink()  # blocks without their manifest (a deletion cut short)
    (ranked / "block-0000.safetensors").write_bytes(b"a finished block")
    assert "and with it what an earlier run left there (no readable manifest (nothing to resume));" in \
        asked_to_start_over(ranked, {}, _key(QuantizeConfig()))  # fmt: skip
    (ranked / "block-0000.safetensors").unlink()  # nothing to lose: nothing said (as a run unasked says nothing)
    assert asked_to_start_over(ranked, {}, _key(QuantizeConfig())) == ""


def _key(config: QuantizeConfig) -> ResumeKey:
    """The resume key of a run of ``config`` on no source in particular (settings only): for folder decisions."""
    settings = {"engine": ENGINE_VERSION, "quantization": config.fingerprint()}
    return ResumeKey(settings, settings_key(settings))


def _folder(parts: Path, settings: dict, done: dict | None = None) -> Path:
    """A parts folder whose manifest keeps ``settings`` under their key (as the engine writes it)."""
    parts.mkdir(parents=True)
    manifest = {"key": settings_key(settings), "settings": settings, "done": done or {}}
    (parts / "manifest.json").write_text(json.dumps(manifest))
    return parts


def test_a_discarded_parts_folder_is_named_by_the_settings_in_force(tmp_path):
    """A folder made with the default alpha grid (11, left out of the resume key so that folders from before the
    setting stay resumable) was said to be made with "alpha_points None -> 5". The values in force are named,
    and such a folder still counts as made with the default."""
    from gpu.streaming.resume import differs_from, made_by_another_version, what_differs

    def manifest(config: QuantizeConfig) -> dict:
        return {"done": {}, "settings": _key(config).settings}

    default, five = QuantizeConfig(), QuantizeConfig(alpha_points=5)
    assert "alpha_points" not in default.fingerprint()  # what folders from before the setting hold
    assert what_differs(manifest(default), _key(five)) == "alpha points 11 -> 5"
    assert what_differs(manifest(five), _key(default)) == "alpha points 5 -> 11"
    naive = QuantizeConfig(method="naive", alpha_points=5)  # no alpha grid: the method change says it all
    assert what_differs(manifest(naive), _key(five)) == "method naive -> svdquant"
    assert what_differs(manifest(QuantizeConfig(calib_prompts=8)), _key(default)) == "calib prompts 8 -> 64"
    # A folder of the version before the setting (its whole config, no alpha_points) resumes for an explicit 11.
    before = {k: v for k, v in asdict(default).items()
              if k not in ("alpha_points", "resume", "gpu_budget_gib", "ram_budget_gib")}  # fmt: skip
    parts = _folder(tmp_path / "o.safetensors.parts", {"engine": ENGINE_VERSION, "quantization": before})
    assert resumes_from(parts, _key(QuantizeConfig(alpha_points=11))) is True
    assert resumes_from(parts, _key(five)) is False and differs_from(parts, _key(five)) == "alpha points 11 -> 5"
    # A manifest with no settings is another version's; one that cannot be read resumes nothing, and says so.
    (parts / "manifest.json").write_text(json.dumps({"key": "an older quantizer's", "done": {}}))
    assert resumes_from(parts, _key(default)) is False and made_by_another_version(parts)
    assert differs_from(parts, _key(default)) == "another version of the quantizer"
    (parts / "manifest.json").write_bytes(b"\xff{")
    assert resumes_from(parts, _key(default)) is False and not made_by_another_version(parts)
    assert differs_from(parts, _key(default)) == "no readable manifest (nothing to resume)"


def test_a_folder_without_a_readable_manifest_is_named_so_and_deleted_only_with_nothing_in_it(tmp_path):
    """A parts folder without a (readable) manifest was said to be "another version of the quantizer". It is said
    as what it is; it resumes nothing, and a run may discard it unasked only when that loses nothing: a deletion
    cut short (the manifest goes first) leaves block files, which are listed, to delete."""
    from gpu.streaming.parts_folder import discards_nothing
    from gpu.streaming.resume import differs_from, made_by_another_version
    from gpu.streaming.unfinished import unfinished_runs

    key = _key(QuantizeConfig())
    parts = tmp_path / "o.safetensors.parts"
    (parts / "act0").mkdir(parents=True)  # what a killed run leaves: spilled inputs, a temp file
    (parts / "act0" / "0.safetensors").write_bytes(b"x")
    (parts / ".tmpAb12Cd").write_bytes(b"x")
    assert resumes_from(parts, key) is False and discards_nothing(parts)
    (parts / "block-0003.safetensors").write_bytes(b"a finished block")
    assert resumes_from(parts, key) is False and not discards_nothing(parts) and not made_by_another_version(parts)
    assert differs_from(parts, key) == "no readable manifest (nothing to resume)"
    [run] = unfinished_runs(tmp_path, key)
    assert (run.resumes, run.differs, run.blocks_done) == (False, "no readable manifest (nothing to resume)", 0)
    assert not discards_nothing(_folder(tmp_path / "p.safetensors.parts", {}))  # a manifest: never unasked
    events = []  # a run given that output (the command line) starts over, saying why
    with pytest.raises(Cancelled):
        quantize_model(DEMO, tmp_path / "o.safetensors", _cfg(), events.append, (parts / "manifest.json").is_file,
                       library=ModelLibrary(tmp_path / "lib"), device=CPU)  # fmt: skip
    assert "o.safetensors.parts has no readable manifest (nothing to resume): starting over" in [
        e.message for e in events]  # fmt: skip


def test_a_file_managers_own_files_neither_hide_a_run_nor_keep_it_from_resuming(tmp_path):
    """Finder's .DS_Store, Explorer's Thumbs.db and desktop.ini in a parts folder (opened to see what takes the
    space) counted as the user's files: the run was left out of "Unfinished runs…" and refused to resume ("holds
    files the quantizer did not write"). They are no one's files: ignored, and deleted with the folder."""
    from gpu.streaming.parts_folder import parts_in_the_way
    from gpu.streaming.unfinished import delete_unfinished_run, unfinished_runs

    key = _key(QuantizeConfig())
    parts = _folder(tmp_path / "o.safetensors.parts", key.settings)
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "THUMBS.DB"):
        (parts / junk).write_bytes(b"a file manager's")
    assert parts_in_the_way(parts) == "" and resumes_from(parts, key) is True
    assert [(run.parts, run.resumes) for run in unfinished_runs(tmp_path, key)] == [(parts, True)]
    delete_unfinished_run(parts)
    assert list(tmp_path.iterdir()) == []


def test_the_resume_key_holds_what_the_blocks_are_made_of_not_how_it_is_named(tmp_path):
    """The key held the base pipeline as it was spelled (the wizard gives its library name, the command line a
    path, perhaps with a trailing / or through a link) and the source's files by their absolute path: the same run
    given another way, or its source moved to another drive, started over, deleting the finished blocks. The base
    counts by its files and prompts, the source by its files' paths inside it, sizes and times."""
    import os

    lib = ModelLibrary(tmp_path / "lib")
    (tmp_path / "disk1").mkdir()
    single = save_bfl_transformer(DEMO, tmp_path / "disk1" / "flux-demo.safetensors")
    os.symlink(DEMO, tmp_path / "demo-link")
    bases = ("demo", str(DEMO), f"{DEMO}/", str(tmp_path / "demo-link"))
    [key] = {resume_key(single, _cfg(base=base), lib, CPU).key for base in bases}
    moved = tmp_path / "disk2" / single.name
    moved.parent.mkdir()
    shutil.copy2(single, moved)  # a copy keeping its times: the same file on another drive
    assert resume_key(moved, _cfg(base="demo"), lib, CPU).key == key
    shutil.copytree(DEMO, tmp_path / "disk1" / "demo")
    shutil.copytree(DEMO, tmp_path / "disk2" / "demo")
    assert resume_key(tmp_path / "disk1" / "demo", _cfg(), lib, CPU).key == resume_key(
        tmp_path / "disk2" / "demo", _cfg(), lib, CPU).key  # fmt: skip
    os.utime(moved, ns=(moved.stat().st_atime_ns, moved.stat().st_mtime_ns + 10**9))  # written again since
    assert resume_key(moved, _cfg(base="demo"), lib, CPU).key != key
    # another model of the same name, size and time (a fine-tune in the same dtype, unpacked keeping its times):
    # other blocks, so no resume (the key was the same when it held names, sizes and times only)
    other = tmp_path / "disk3" / single.name
    other.parent.mkdir()
    data = bytearray(single.read_bytes())
    data[-100] ^= 0xFF
    other.write_bytes(bytes(data))
    os.utime(other, ns=(single.stat().st_atime_ns, single.stat().st_mtime_ns))
    assert resume_key(other, _cfg(base="demo"), lib, CPU).key != key


def _set_mtimes(root: Path, when_ns: Callable[[Path], int]) -> None:
    """Gives ``root`` (a file, or every file under a folder) the modification times ``when_ns`` says."""
    import os

    for f in [root] if root.is_file() else [f for f in root.rglob("*") if f.is_file()]:
        os.utime(f, ns=(f.stat().st_atime_ns, when_ns(f)))


FINE_NS = 1_763_000_001_234_567_891  # a time as a file system with ns times gives it as a file is written
STEP = 2 * 10**9  # FAT's and exFAT's 2 s


def test_a_source_copied_onto_a_file_system_with_coarser_times_still_resumes(tmp_path):
    """The key compared the source's times to the nanosecond: copied keeping its times (cp -p, rsync -t, Explorer)
    onto exFAT or FAT (2 s) or a network share (1 s), a source read as another, and the run started over,
    discarding hours of blocks. Its time may now differ by that much; a file changed since still does not resume,
    be it in its sampled MiBs (the digest) or outside them, written again later (the time)."""
    from gpu.streaming.resume import differs_from
    from gpu.streaming.source import sampled_digest

    lib = ModelLibrary(tmp_path / "lib")
    (tmp_path / "disk1").mkdir()
    single = save_bfl_transformer(DEMO, tmp_path / "disk1" / "flux-demo.safetensors")
    folder = tmp_path / "disk1" / "demo"
    shutil.copytree(DEMO, folder)
    for source in (single, folder):
        _set_mtimes(source, lambda _f: FINE_NS)
    config = {single: _cfg(base="demo"), folder: _cfg()}
    for source in (single, folder):
        key = resume_key(source, config[source], lib, CPU)
        parts = _folder(tmp_path / "models" / f"{source.stem}.safetensors.parts", key.settings)
        # rounded up to 2 s (Windows on FAT), down to 2 s (Linux on FAT), down to 1 s (a share)
        for rounded in (lambda t: -(-t // STEP) * STEP, lambda t: t // STEP * STEP, lambda t: t // 10**9 * 10**9):
            copy = tmp_path / "usb" / source.name
            shutil.rmtree(copy.parent, ignore_errors=True)
            copy.parent.mkdir()
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy)
            _set_mtimes(copy, lambda f, r=rounded: r(f.stat().st_mtime_ns))
            moved = resume_key(copy, config[source], lib, CPU)
            assert moved.key != key.key and resumes_from(parts, moved) is True, source.name

    parts = parts_dir(tmp_path / "models" / single.name)
    data = bytearray(single.read_bytes())
    assert len(data) > 8 * 2**20  # room outside the first, middle and last MiB that the digest reads
    other = tmp_path / "disk2" / single.name
    other.parent.mkdir()
    # bytes changed outside the sampled MiBs (a merge that changed some layers), written later: the time tells
    changed = bytearray(data)
    changed[3 * 2**20] ^= 0xFF
    other.write_bytes(bytes(changed))
    assert sampled_digest(other) == sampled_digest(single)
    _set_mtimes(other, lambda _f: FINE_NS + 60 * 10**9)
    assert resumes_from(parts, resume_key(other, config[single], lib, CPU)) is False
    assert differs_from(parts, resume_key(other, config[single], lib, CPU)).startswith("other source weights")
    # bytes changed where the digest reads, the time within the step: the digest tells
    changed = bytearray(data)
    changed[-100] ^= 0xFF
    other.write_bytes(bytes(changed))
    _set_mtimes(other, lambda _f: FINE_NS)
    assert resumes_from(parts, resume_key(other, config[single], lib, CPU)) is False


def _as_the_earlier_version_wrote(settings: dict, config: QuantizeConfig, files: list[Path]) -> dict:
    """``settings`` (a manifest's) as the version before the key's change wrote them for the same run: every
    quantization field but the budgets (the alpha grid left out at 11 or for a method that does not smooth), and
    the weight files by their resolved paths."""
    quantization = {k: v for k, v in asdict(config).items() if k not in ("resume", "gpu_budget_gib", "ram_budget_gib")}
    if config.alpha_points == 11 or config.method not in ("svdquant", "smoothquant"):
        del quantization["alpha_points"]
    source = [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    return {**settings, "quantization": quantization, "source": source}


def test_parts_folders_of_the_earlier_key_still_resume_and_are_recorded_in_the_new_one(tmp_path):
    """The key's change must not throw finished blocks away: a folder the earlier version made (the base as the
    wizard spelled it, the source's absolute path) resumes, here with the base given by its path and the source
    since moved to another folder, and the run records it under the new key."""
    lib = ModelLibrary(tmp_path / "lib")
    (tmp_path / "disk1").mkdir()
    single = save_bfl_transformer(DEMO, tmp_path / "disk1" / "flux-demo.safetensors")
    _set_mtimes(single, lambda _f: FINE_NS)  # a time the file system gave it: it proves the file (see below)
    out = tmp_path / "models" / "o.safetensors"
    parts = parts_dir(out)
    manifest = _partial_with(out, 2, lib, _cfg(base="demo"), single)
    earlier = _as_the_earlier_version_wrote(manifest["settings"], _cfg(base="demo"), [single])
    (parts / "manifest.json").write_text(json.dumps({**manifest, "key": settings_key(earlier), "settings": earlier}))
    moved = tmp_path / "disk2" / single.name
    moved.parent.mkdir()
    shutil.copy2(single, moved)
    single.unlink()
    config = _cfg(base=f"{DEMO}/")
    key = resume_key(moved, config, lib, CPU)
    assert resumes_from(parts, key) is True
    events = []

    def three_done() -> bool:
        return len(json.loads((parts / "manifest.json").read_text())["done"]) >= 3

    with pytest.raises(Cancelled):
        quantize_model(moved, out, config, events.append, three_done, library=lib, device=CPU)
    assert "resuming: 2/6 blocks already done" in [e.message for e in events]
    after = json.loads((parts / "manifest.json").read_text())
    assert (after["key"], after["settings"], len(after["done"])) == (key.key, key.settings, 3)


def test_a_parts_folder_of_the_earlier_key_resumes_only_where_its_time_proves_the_file(tmp_path):
    """The earlier key kept no digest: a folder it made was taken up by the file that ends in the same name and has
    the same size and time, which another model can have (two fine-tunes in one dtype, unpacked from archives
    or downloaded keeping whole-second times): the run resumed from the other model's blocks. Only a time to the
    nanosecond, which no other file has but as a copy of this one, proves the file now."""
    lib = ModelLibrary(tmp_path / "lib")
    (tmp_path / "disk1").mkdir()
    single = save_bfl_transformer(DEMO, tmp_path / "disk1" / "flux-demo.safetensors")
    config = _cfg(base="demo")
    other = tmp_path / "disk2" / single.name  # another model: the same name and size
    other.parent.mkdir()
    data = bytearray(single.read_bytes())
    data[-100] ^= 0xFF
    other.write_bytes(bytes(data))
    whole_second = FINE_NS // 10**9 * 10**9
    cases = ((whole_second, other, False), (whole_second, single, False), (FINE_NS, single, True))
    for i, (when, source, resumes) in enumerate(cases):
        _set_mtimes(single, lambda _f, t=when: t)
        _set_mtimes(other, lambda _f, t=when: t)
        key = resume_key(single, config, lib, CPU)
        earlier = _as_the_earlier_version_wrote(key.settings, config, [single])
        parts = _folder(tmp_path / "models" / f"{i}.safetensors.parts", earlier)
        assert resumes_from(parts, resume_key(source, config, lib, CPU)) is resumes, (when, source)


def test_a_parts_folder_of_the_earlier_key_its_time_cannot_prove_is_kept_not_deleted(tmp_path):
    """Such a folder (above) whose source has whole-second times (wget -N, curl -R, an unzip) was deleted by a run
    with the same --out, as made from "other source weights (another model, or its files changed since)": nothing
    had changed, it only could not be proven. It is kept, with the run refused saying so and how to start over
    (never resumed: another model's blocks mixed into this one's is the worst outcome); a folder that differs in
    what can be seen is discarded as before."""
    from gpu.errors import OutputError
    from gpu.streaming.resume import UNPROVEN, differs_from, unproven

    lib = ModelLibrary(tmp_path / "lib")
    (tmp_path / "disk1").mkdir()
    single = save_bfl_transformer(DEMO, tmp_path / "disk1" / "flux-demo.safetensors")
    _set_mtimes(single, lambda _f: FINE_NS // 10**9 * 10**9)  # the very file the blocks were made from
    config = _cfg(base="demo")
    key = resume_key(single, config, lib, CPU)
    out = tmp_path / "models" / "flux-demo.safetensors"
    earlier = _as_the_earlier_version_wrote(key.settings, config, [single])
    parts = _folder(parts_dir(out), earlier, done={"transformer_blocks.0": "0" * 64})
    (parts / "block-0000.safetensors").write_bytes(b"hours of work")
    kept = sorted((p.name, p.read_bytes()) for p in parts.iterdir())
    assert resumes_from(parts, key) is False and unproven(parts, key) and differs_from(parts, key) == UNPROVEN
    with pytest.raises(OutputError) as refused:
        quantize_model(single, out, config, library=lib, device=CPU)
    assert str(refused.value) == f"{parts} is kept and not resumed: {UNPROVEN}"
    assert refused.value.hint.startswith("to start over with this --out, add --no-resume (which deletes that folder) "
                                         "or delete it yourself; or choose another")  # fmt: skip
    assert sorted((p.name, p.read_bytes()) for p in parts.iterdir()) == kept and not out.exists()
    ranked = resume_key(single, _cfg(base="demo", rank=16), lib, CPU)  # other settings: seen to differ
    assert not unproven(parts, ranked) and differs_from(parts, ranked) == "rank 32 -> 16"


def _partial(out: Path, blocks: int, lib: ModelLibrary, source: Path = DEMO) -> dict:
    """A run stopped (as by a kill) once the samples and ``blocks`` blocks are finished -> its manifest."""
    return _partial_with(out, blocks, lib, _cfg(), source)


def _partial_with(out: Path, blocks: int, lib: ModelLibrary, config: QuantizeConfig, source: Path = DEMO) -> dict:
    """``_partial`` with ``config``."""
    manifest = parts_dir(out) / "manifest.json"

    def stop() -> bool:
        return (parts_dir(out) / "samples.safetensors").is_file() and len(
            json.loads(manifest.read_text()).get("done", {})) >= blocks  # fmt: skip

    with pytest.raises(Cancelled):
        quantize_model(source, out, config, should_cancel=stop, library=lib, device=CPU)
    return json.loads(manifest.read_text())


def test_damaged_parts_are_detected_and_redone(streamed, tmp_path):
    """Shards truncated, flipped or deleted were assembled as they were: a flipped byte gave a wrong model
    whose checksum said OK, a truncated shard a SafetensorError traceback, a deleted one the same error at
    every rerun. Each is now checked against its recorded SHA-256 and its block redone."""
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    _partial(out, 3, lib)
    parts = parts_dir(out)
    (parts / "block-0000.safetensors").unlink()
    flipped = bytearray((parts / "block-0001.safetensors").read_bytes())
    flipped[-100] ^= 0xFF  # inside the tensor data: the file still reads as a valid safetensors file
    (parts / "block-0001.safetensors").write_bytes(bytes(flipped))
    with open(parts / "block-0002.safetensors", "r+b") as f:
        f.truncate(1000)
    (parts / ".block-0003.safetensors.x1y2z3w4.tmp").write_bytes(b"")  # a kill during a shard write leaves
    (parts / ".tmpAb12Cd").write_bytes(b"half a shard")  # these two (the second is safetensors' own temp file)
    left_by_kill = tmp_path / ".o.safetensors.a1b2c3d4.tmp"  # a kill during the final write leaves this
    left_by_kill.write_bytes(b"x" * 1000)
    users = tmp_path / ".o.safetensors.notes"
    users.write_bytes(b"the user's")
    events = []
    quantize_model(DEMO, out, _cfg(), events.append, library=lib, device=CPU)
    messages = [e.message for e in events]
    assert "block-0000.safetensors is missing: redoing transformer_blocks.0" in messages
    assert "block-0001.safetensors is damaged (checksum mismatch): redoing transformer_blocks.1" in messages
    assert "block-0002.safetensors is damaged (checksum mismatch): redoing single_transformer_blocks.0" in messages
    _same(out, streamed)
    assert not parts.exists() and not left_by_kill.exists() and users.read_bytes() == b"the user's"


def test_samples_are_trusted_only_with_their_recorded_digest(streamed, tmp_path):
    """A kill between writing the samples and the manifest left no prompt count: the resumed file said it
    was calibrated on 0 prompts. The count is now recorded with the samples' digest, in one write."""
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    manifest = _partial(out, 0, lib)  # stops before the first block, after the samples
    for key in ("prompts", "samples"):  # the manifest as the kill left it (old and new layout)
        manifest.pop(key, None)
    (parts_dir(out) / "manifest.json").write_text(json.dumps(manifest))
    quantize_model(DEMO, out, _cfg(), library=lib, device=CPU)
    assert read_checkpoint_meta(out).calibration["prompts"] == 2
    _same(out, streamed)


def test_parts_from_other_calibration_inputs_are_not_reused(tmp_path):
    """The resume key covered the options and the transformer's files only: after the model's default steps,
    its calibration prompts or its text encoders changed, the old blocks were mixed into the new model."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    old = _partial(out, 1, lib, source)
    nibble = json.loads((source / "nibble.json").read_text())
    (source / "nibble.json").write_text(json.dumps({**nibble, "guidance": 2.0}))
    prompts = source / nibble["calibration_prompts"]
    prompts.write_text("a purple moon\n" + prompts.read_text())
    events = []
    with pytest.raises(Cancelled):
        quantize_model(source, out, _cfg(), events.append, _once_replaced(out, old["key"]), library=lib, device=CPU)
    why = "other calibration prompts, calibration guidance 5.0 -> 2.0"
    assert f"o.safetensors.parts was made with other settings ({why}): starting over" in [e.message for e in events]
    assert not json.loads((parts_dir(out) / "manifest.json").read_text())["done"]


def test_a_run_refused_for_a_damaged_text_encoder_leaves_no_parts_behind(tmp_path):
    """The text encoders are loaded after the parts folder and its manifest were written: a run refused for a
    damaged one left OUT.parts/ holding only manifest.json beside the user's output (and had already deleted a
    previous run's parts made with other settings). It now leaves nothing, and a previous run's parts as they were,
    without saying they were discarded."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    encoder = source / "text_encoder" / "model.safetensors"
    encoder.write_bytes(encoder.read_bytes()[:100])
    damaged = "text_encoder.model.safetensors: not a safetensors file, or a damaged.incomplete copy"
    lib = ModelLibrary(tmp_path / "lib")
    out = tmp_path / "new" / "o.safetensors"
    with pytest.raises(ModelLoadError, match=damaged):
        quantize_model(source, out, _cfg(), library=lib, device=CPU)
    assert not out.parent.exists()  # neither a parts folder nor the output's folder made for it

    out = tmp_path / "o.safetensors"
    previous = {
        "manifest.json": json.dumps({"key": "other settings", "done": {"transformer_blocks.0": {}}}),
        "samples.safetensors": "a previous run's samples",
        "block-0000.safetensors": "its first block",
    }
    parts_dir(out).mkdir()
    for name, text in previous.items():
        (parts_dir(out) / name).write_text(text)
    events = []
    with pytest.raises(ModelLoadError, match=damaged):
        quantize_model(source, out, _cfg(), events.append, library=lib, device=CPU)
    assert {p.name: p.read_text() for p in parts_dir(out).iterdir()} == previous
    # Nothing was discarded, so nothing says so (the run said "starting over" before loading the encoders).
    assert not any("starting over" in e.message for e in events)


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_parts_path_that_is_not_ours_is_never_deleted(tmp_path, capsys, kind):
    """A file named OUT.parts gave 'Not a directory' from inside rmtree; a folder of that name holding the
    user's own files was deleted wholesale as a stale parts folder."""
    from main import main

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    if kind == "file":
        parts.write_bytes(b"the user's")
        words = f"error: {parts} is in the way: the quantizer keeps its resumable parts in a folder of that name"
    else:
        parts.mkdir()
        (parts / "notes.txt").write_bytes(b"the user's")
        words = f"error: {parts} holds files the quantizer did not write (notes.txt)"
    assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1", "--rank", "8"]) == 2
    assert capsys.readouterr().err.startswith(words)
    assert (parts.read_bytes() if kind == "file" else (parts / "notes.txt").read_bytes()) == b"the user's"
    assert not out.exists()


_LOCK_HOLDER = """
import sys, time
from gpu.output_lock import output_lock
with output_lock(sys.argv[1], "quantize run"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_run_on_the_same_output_is_refused_while_the_first_works(tmp_path, capsys):
    """Two runs writing one output shared its parts folder: each resumed, rewrote and finally deleted what
    the other had made. The second is now refused, naming the first's process; a killed holder leaves no lock."""
    import subprocess
    import sys

    from main import main

    out = tmp_path / "o.safetensors"
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1", "--rank", "8"]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {out} is being written by another quantize run (process {holder.pid}); "
                       "wait for it to finish, or choose another output file\n")  # fmt: skip
        assert not parts_dir(out).exists()  # refused before touching anything
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(Cancelled):  # the lock went with its process: this run starts (and is stopped early)
        quantize_model(DEMO, out, _cfg(), should_cancel=_after_calls(0), library=ModelLibrary(tmp_path), device=CPU)
    # Stopped before its samples existed, it leaves no parts folder (nothing to resume), and no lock file.
    assert list(tmp_path.iterdir()) == []


# -- single-file checkpoints (BFL's flux1-dev.safetensors layout, ComfyUI's all-in-one files) --------------------
def test_a_single_file_checkpoint_quantizes_to_the_same_model_as_its_pipeline_folder(streamed, tmp_path, capsys):
    """From the CLI a single-file checkpoint ended in an AssertionError: it has no text encoders, and the
    quantize command had no --base to name a pipeline that has them."""
    from main import main

    single = save_bfl_transformer(DEMO, tmp_path / "flux-demo.safetensors")
    out = tmp_path / "q.safetensors"
    args = ["quantize", str(single), "--out", str(out), "--calib-prompts", "2", "--calib-steps", "3", "--rank", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: flux-demo.safetensors is a single-file checkpoint: it has no text encoders to "
                          "calibrate with (add --base PIPELINE")  # fmt: skip
    assert not out.exists() and not parts_dir(out).exists()
    quantize_model(single, out, _cfg(base=str(DEMO)), library=ModelLibrary(tmp_path / "lib"), device=CPU)
    _same(out, streamed)  # the same weights, encoders and settings: the same bits
    assert read_checkpoint_meta(out).base_model["path"] == str(DEMO)  # generation takes the encoders and VAE there


def test_comfyui_all_in_one_files_are_read_under_their_prefix(tmp_path):
    from gpu.streaming.source import bfl_file_source, diffusers_folder_source

    vae = {"first_stage_model.decoder.conv_in.weight": torch.ones(4, 4)}  # beside the transformer: ignored
    single = save_bfl_transformer(DEMO, tmp_path / "all-in-one.safetensors", "model.diffusion_model.", vae)
    ours, ref = bfl_file_source(single).tensors(""), diffusers_folder_source(DEMO).tensors("")
    assert ours.keys() == ref.keys() and all(torch.equal(ours[k], ref[k]) for k in ref)


def test_an_fp8_single_file_loads_as_its_bf16_values(tmp_path):
    """FP8 single files (e.g. ComfyUI's flux1-dev-fp8) are read and widened to the runtime dtype block by block;
    their blocks and head hold exactly the FP8 values."""
    from safetensors.torch import load_file, save_file

    from gpu.streaming.source import bfl_file_source, diffusers_folder_source, load_block, load_head

    single = save_bfl_transformer(DEMO, tmp_path / "flux-fp8.safetensors", "model.diffusion_model.")
    save_file({k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in load_file(single).items()},
              str(single))  # fmt: skip
    ref = diffusers_folder_source(DEMO)
    src = bfl_file_source(single)
    block = load_block(src, "transformer_blocks", 1, CPU, torch.bfloat16).state_dict()
    want = ref.tensors("transformer_blocks.1.")
    for k, v in want.items():
        expect = v.to(torch.float8_e4m3fn).to(torch.bfloat16) if v.ndim == 2 else v
        assert block[k].dtype == torch.bfloat16 and torch.equal(block[k], expect), k
    head = load_head(src, CPU, torch.bfloat16).state_dict()
    assert torch.equal(
        head["x_embedder.weight"], ref.tensors("x_embedder.")["weight"].to(torch.float8_e4m3fn).to(torch.bfloat16)
    )


def test_a_single_file_checkpoint_given_as_a_model_says_to_quantize_it(tmp_path, capsys):
    """It was called "not an SVDQ checkpoint; plain safetensors weights ... are not quantized models", which
    did not say what the file is or what to do with it."""
    from main import main

    single = save_bfl_transformer(DEMO, tmp_path / "flux1-dev.safetensors")
    for command in (["generate", "a cat", "--model", str(single), "--out", str(tmp_path / "x.png")],
                    ["inspect", str(single)]):  # fmt: skip
        assert main(command) == 2
        assert capsys.readouterr().err == ("error: flux1-dev.safetensors: a single-file FLUX.1 checkpoint (16-bit or "
                                           "FP8), not a quantized model (quantize it first: the app's Quantize "
                                           "wizard, or python main.py quantize FILE --base PIPELINE --out "
                                           "OUT.safetensors, where PIPELINE is a diffusers "
                                           "FLUX.1 folder supplying the text encoders)\n")  # fmt: skip


def test_single_file_problems_are_named_before_any_work(tmp_path):
    from safetensors.torch import load_file, save_file

    from gpu.errors import BadRequestError

    single = save_bfl_transformer(DEMO, tmp_path / "flux-demo.safetensors")
    lib = ModelLibrary(tmp_path / "lib")
    out = tmp_path / "q.safetensors"
    wrong = tmp_path / "wrong"  # a pipeline whose text encoder width the checkpoint does not take
    pipeline_copy(DEMO, wrong, joint_attention_dim=4096)
    with pytest.raises(ModelLoadError, match="flux-demo.safetensors does not fit the base pipeline wrong: "
                                             "joint_attention_dim 128 vs 4096"):  # fmt: skip
        quantize_model(single, out, _cfg(base=str(wrong)), library=lib, device=CPU)
    with pytest.raises(BadRequestError, match="a base pipeline is for single-file checkpoints; demo brings its own"):
        quantize_model(DEMO, out, _cfg(base=str(DEMO)), library=lib, device=CPU)
    lora = tmp_path / "lora.safetensors"  # given with a base, as a single file, but none: named as such
    save_file({"lora_A": torch.zeros(2, 2)}, str(lora))
    with pytest.raises(ModelLoadError, match="lora.safetensors: a LoRA, not a model"):
        quantize_model(lora, out, _cfg(base=str(DEMO)), library=lib, device=CPU)
    partial = load_file(single)
    del partial["double_blocks.1.img_attn.proj.weight"]  # an incomplete download or another variant
    save_file(partial, str(single))
    with pytest.raises(ModelLoadError, match="the transformer lacks 1 tensors .transformer_blocks.1.attn.to_out.0"):
        quantize_model(single, out, _cfg(base=str(DEMO)), library=lib, device=CPU)
    save_file({**partial, "double_blocks.0.img_attn.qkv.scale_weight": torch.ones(1)}, str(single))  # scaled FP8
    with pytest.raises(ModelLoadError, match="tensors a FLUX.1 transformer does not have: double_blocks.0.img_attn"):
        quantize_model(single, out, _cfg(base=str(DEMO)), library=lib, device=CPU)
    assert not out.exists() and not parts_dir(out).exists()


def test_a_pipeline_folder_with_damaged_weights_is_named_with_what_to_do(tmp_path):
    """A pipeline folder whose transformer weights were deleted said "transformer/ holds no .safetensors weights"
    and nothing more; a truncated one, or a shard gone, is named the same way, before any work."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    weights = source / "transformer" / "diffusion_pytorch_model.safetensors"
    out = tmp_path / "q.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 1)
    with pytest.raises(ModelLoadError, match="model: transformer/diffusion_pytorch_model.safetensors: truncated") as e:
        quantize_model(source, out, _cfg(), library=lib, device=CPU)
    assert e.value.hint == "copy or download the model again"
    weights.unlink()
    with pytest.raises(ModelLoadError, match="model: transformer/ holds no .safetensors weights") as e:
        quantize_model(source, out, _cfg(), library=lib, device=CPU)
    assert e.value.hint == "copy or download the model again"
    assert not out.exists() and not parts_dir(out).exists()


def test_a_damaged_single_file_given_with_a_base_is_named_for_what_is_wrong(tmp_path, capsys):
    """A truncated download of a FLUX.1 checkpoint was called "not a single-file FLUX.1 checkpoint (no img_in /
    double_blocks tensors)": it has both, and the hint sent the user elsewhere."""
    from main import main

    single = save_bfl_transformer(DEMO, tmp_path / "flux1-dev.safetensors")
    whole = single.read_bytes()
    single.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "q.safetensors"
    assert main(["quantize", str(single), "--base", "demo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: flux1-dev.safetensors: truncated: the header describes") and "no img_in" not in err
    assert not out.exists() and not parts_dir(out).exists()


def test_a_single_file_named_in_upper_case_is_a_source_as_in_the_library(tmp_path):
    """A source file had to be named .safetensors in lower case ("rename it"), where the library takes any case
    (``is_safetensors_name``): MODEL.SAFETENSORS, as Windows users save it, is read like its lower-case copy, with
    or without --base (without, the run asks for one)."""
    from gpu.errors import BadRequestError
    from gpu.streaming.source import is_bfl_file

    lib = ModelLibrary(tmp_path / "lib")
    lower = save_bfl_transformer(DEMO, tmp_path / "flux1-dev.safetensors")
    upper = tmp_path / "FLUX.SAFETENSORS"
    shutil.copy2(lower, upper)
    assert is_bfl_file(upper)
    [(_, *as_lower)], [(_, *as_upper)] = (resume_key(f, _cfg(base="demo"), lib, CPU).settings["source"]
                                          for f in (lower, upper))  # fmt: skip
    assert as_upper == as_lower  # size, time, digest
    with pytest.raises(BadRequestError, match="FLUX.SAFETENSORS is a single-file checkpoint"):
        resume_key(upper, _cfg(), lib, CPU)


def _once_replaced(out: Path, old_key: str) -> Callable[[], bool]:
    """A cancel callback that stops a run once it has put its own parts folder in place of one made with other
    settings: that happens only after it recorded its samples."""
    manifest = parts_dir(out) / "manifest.json"

    def cancel() -> bool:
        return json.loads(manifest.read_text())["key"] != old_key

    return cancel


def _after_calls(n: int):
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] > n

    return cancel


def test_the_gpu_memory_budget_is_checked_and_held_on_cuda(tmp_path):
    """The GPU memory budget (the wizard's calibration page) was stored and read by nothing: a run used what it
    wanted. It is refused when not positive and, on CUDA, caps the run's caching allocator, the cap lifted after."""
    from gpu.errors import BadRequestError

    for gib in (0.0, -1.0, float("nan")):
        with pytest.raises(BadRequestError, match="GPU memory budget of .* GiB is not possible"):
            quantize_model(DEMO, tmp_path / "x.safetensors", _cfg(gpu_budget_gib=gib), library=ModelLibrary(tmp_path))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the budget is held on CUDA only")
def test_a_run_over_its_gpu_memory_budget_stops_and_the_budget_is_lifted(tmp_path):
    from gpu.errors import BadRequestError

    before = torch.cuda.get_per_process_memory_fraction()
    tiny = _cfg(gpu_budget_gib=2 / 1024)  # 2 MiB: less than the demo's first block needs
    with pytest.raises(BadRequestError, match="needs more GPU memory than its budget of 0.00195312 GiB") as err:
        quantize_model(DEMO, tmp_path / "y.safetensors", tiny, library=ModelLibrary(tmp_path))
    assert "larger GPU memory budget" in err.value.hint
    # as it was, within a MiB (the budget was 2 MiB): a fraction an earlier test set in this process (the 16 GB
    # simulation's) read back about a byte's share (1.2e-11) off what it was set to, on an H100
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    assert torch.cuda.get_per_process_memory_fraction() == pytest.approx(before, rel=0, abs=2**20 / total)


def test_unfinished_runs_are_listed_with_whether_a_run_resumes_them_and_deleted_only_when_idle(tmp_path):
    """The app asked whether a parts folder was made with the same quantization settings only, while the run also
    compares the source's files, the calibration inputs and the quantizer's version: after the source was moved
    or its files touched, the wizard reused the name and the run deleted the finished blocks to start over. Both
    now ask the engine's one decision (``resumes_from``). The unfinished runs are listed (size, date, blocks,
    whether a run resumes them) and deleted on request, never while a run holds them nor with a file of the
    user's in them, and never the model file of that name."""
    import os

    from gpu.errors import OutputBusy, OutputError
    from gpu.output_lock import output_lock
    from gpu.streaming.resume import differs_from
    from gpu.streaming.unfinished import delete_unfinished_run, unfinished_runs

    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    models = tmp_path / "models"
    out = models / "m.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    _partial(out, 1, lib, source)
    parts = parts_dir(out)
    key = resume_key(source, _cfg(), lib, CPU)
    [run] = unfinished_runs(models, key)
    assert (run.parts, run.output, run.blocks_done, run.resumes, run.differs) == (parts, out, 1, True, "")
    assert run.size_bytes == sum(f.stat().st_size for f in parts.rglob("*") if f.is_file())
    assert run.modified == max(f.stat().st_mtime for f in (parts, *parts.iterdir()))
    assert unfinished_runs(models)[0].resumes is None  # no run to compare with
    weights = source / "transformer" / "diffusion_pytorch_model.safetensors"
    # written again a minute later (within 2 s it counts as the same file: ``MTIME_STEP_NS``)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 60 * 10**9))
    touched = resume_key(source, _cfg(), lib, CPU)
    assert resumes_from(parts, touched) is False
    assert differs_from(parts, touched) == "other source weights (another model, or its files changed since)"
    assert unfinished_runs(models, touched)[0].differs == differs_from(parts, touched)

    out.write_bytes(b"a finished model of that name")
    with output_lock(out, "quantize run"), pytest.raises(OutputBusy, match="is being written by another quantize run"):
        delete_unfinished_run(parts)  # a run works on it (its lock, held in this process or another)
    (parts / "notes.txt").write_text("the user's")
    assert unfinished_runs(models, key) == []
    with pytest.raises(OutputError, match="holds files the quantizer did not write \\(notes.txt\\)$"):
        delete_unfinished_run(parts)
    (parts / "notes.txt").unlink()
    delete_unfinished_run(parts)
    assert sorted(p.name for p in models.iterdir()) == ["m.safetensors"] and out.read_bytes().startswith(b"a finished")
    with pytest.raises(OutputError, match="is not the folder of an unfinished quantize run"):
        delete_unfinished_run(out)


def test_a_run_without_the_disk_space_it_needs_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """A run wrote GiBs of samples and blocks and failed at its end, with a full disk. It now estimates what it
    still writes (``gpu.streaming.disk_space``) and is refused before the text encoders load, naming the folder,
    the GiB it needs and the GiB free; from the command line too."""
    from gpu.runtime.memory_policy import amount
    from gpu.streaming.disk_space import DiskSpaceError
    from main import main

    needs = _disk_space_asked(monkeypatch)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=2**20))
    out = tmp_path / "new" / "o.safetensors"
    events = []
    with pytest.raises(DiskSpaceError) as refused:
        quantize_model(DEMO, out, _cfg(), events.append, library=ModelLibrary(tmp_path / "lib"), device=CPU)
    [need] = needs
    assert str(refused.value) == (
        f"not enough free disk space in {out.parent}: the run needs about {amount(need.total)} there ("
        f"{amount(need.samples)} of calibration samples + {amount(need.blocks)} of blocks still to quantize + a "
        f"{amount(need.model)} model file; the samples and blocks stay until the model file is written), and 1 MiB "
        "is free")  # fmt: skip
    assert need.total > 2**20 and need.samples and need.spill == 0 and events == []  # nothing recorded
    assert not out.parent.exists()  # the folder made for the output's lock is gone with it
    assert main(["quantize", "demo", "--out", str(out), "--calib-prompts", "1", "--rank", "8"]) == 2
    assert capsys.readouterr().err.startswith(f"error: not enough free disk space in {out.parent}: the run needs")


def test_a_disk_that_fills_up_mid_run_is_said_and_the_finished_blocks_stay(tmp_path, monkeypatch):
    """A disk that filled up while a block or the model file was written ended with "cannot write
    …/block-0002.safetensors: No space left on device", which the wizard took for a folder it cannot write to
    ("make it a folder you can write to") when safetensors raised it, its OS error being only in its text. It is
    said as a full disk, naming the folder and what is kept; the finished blocks stay, and the next run resumes."""
    import errno
    import os
    import re

    import safetensors.torch
    from safetensors import SafetensorError

    from gpu.atomic import scratch_prefix
    from gpu.streaming.disk_space import DiskSpaceError
    from gpu.streaming.parts_folder import read_manifest
    from gpu.streaming.shards import damaged_shards

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    serialize = safetensors.torch.serialize_file  # the write itself; the engine and its atomic writes run as ever
    full: dict = {}

    def serialize_file(tensors, filename, *args, **kwargs):
        if Path(filename).parent.name.startswith(scratch_prefix(full["target"])):
            raise full["error"]
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize_file)
    full.update(target=parts / "block-0002.safetensors", error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(DiskSpaceError) as failed:
        quantize_model(DEMO, out, _cfg(), library=lib, device=CPU)
    message = str(failed.value)
    assert message.startswith(f"the disk holding {tmp_path} is full (") and message.endswith(
        f"free there): cannot write {parts / 'block-0002.safetensors'}: No space left on device; the calibration "
        f"samples and 2 finished blocks are kept in {parts}, and a run with the same settings resumes from them")
    assert isinstance(failed.value.__cause__, OSError) and failed.value.__cause__.errno == errno.ENOSPC
    manifest = read_manifest(parts)
    assert len(manifest["done"]) == 2 and damaged_shards(parts, manifest["done"]) == {}
    assert sorted(p.name for p in parts.iterdir()) == ["block-0000.safetensors", "block-0001.safetensors",
                                                       "manifest.json", "samples.safetensors"]  # fmt: skip

    # The model file's write, as safetensors reports a full disk: the OS error only in its text.
    code = 112 if os.name == "nt" else errno.ENOSPC  # Windows' ERROR_DISK_FULL
    full.update(target=out, error=SafetensorError(f"Error while serializing: I/O error: No space left on device "
                                                  f"(os error {code})"))  # fmt: skip
    events = []
    with pytest.raises(DiskSpaceError, match=f"samples and 6 finished blocks are kept in {re.escape(str(parts))}, and"):
        quantize_model(DEMO, out, _cfg(), events.append, library=lib, device=CPU)
    assert any("resuming: 2/6" in e.message for e in events)
    assert [p.name for p in tmp_path.iterdir()] == [parts.name]  # no model, no temp folder beside it
    assert len(read_manifest(parts)["done"]) == 6


@pytest.mark.parametrize("config", [_cfg(resume=False), _cfg(rank=16)], ids=["asked to start over", "other settings"])
def test_a_file_put_in_the_parts_folder_while_the_samples_are_recorded_stops_the_run_kept(tmp_path, config):
    """The parts folder was checked for the user's files as the run began, and deleted, to be replaced, minutes
    later once the samples were recorded: a file saved there meanwhile went with it. It is checked again just
    before, and the run stops, naming the file, with nothing deleted."""
    from gpu.errors import OutputError

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    old = _partial_with(out, 1, lib, _cfg(rank=8))
    before = sorted(p.name for p in parts.iterdir())

    def save_a_note() -> bool:  # asked while the samples are recorded, after the run's first check
        (parts / "notes.txt").write_text("the user's")
        return False

    events = []
    with pytest.raises(OutputError, match=r"holds files the quantizer did not write \(notes.txt\); it would delete "):
        quantize_model(DEMO, out, config, events.append, save_a_note, library=lib, device=CPU)
    assert (parts / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in parts.iterdir()) == sorted([*before, "notes.txt"])
    assert json.loads((parts / "manifest.json").read_text()) == old  # as it was: nothing deleted
    assert not any(e.replacing_parts for e in events)  # nor said to go


@pytest.mark.parametrize(("config", "why"), [
    (_cfg(resume=False), "deleting the old unfinished run, as asked (--no-resume)"),
    (_cfg(rank=16), "deleting the old unfinished run, made with other settings"),
])  # fmt: skip
def test_the_space_a_refused_run_would_free_is_said_with_why_it_deletes_the_old_run(tmp_path, monkeypatch, config,
                                                                                    why):  # fmt: skip
    """A run asked to start over (--no-resume) on a folder of its own settings was refused with "+2 MiB freed by
    deleting the old unfinished run, made with other settings": the one reason a run had to delete it before."""
    from gpu.runtime.memory_policy import amount
    from gpu.streaming.disk_space import DiskSpaceError, folder_usage
    from gpu.streaming.space_needed import check_disk_space

    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    _partial(out, 1, lib)
    freed = amount(folder_usage(parts_dir(out))[0])
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=0))
    for check in (quantize_model, check_disk_space):  # the run's own check, and the wizard's before it
        with pytest.raises(DiskSpaceError) as refused:
            check(DEMO, out, config, library=lib, device=CPU)
        assert str(refused.value).endswith(f"and 0 MiB is free (+{freed} freed by {why})")


def test_a_disk_that_fills_up_in_a_run_asked_to_start_over_sends_the_user_to_resume_without_the_option(tmp_path,
                                                                                                       monkeypatch):
    """A run asked to start over (--no-resume) whose disk filled up said that a run "resumes from them (without
    --no-resume, which deletes them to start over)", while its hint said "run again: the run resumes from what is
    kept", which the same command does not; one finished block was said as "the finished block is kept ... resumes
    from them". Message and hint now agree; and samples no manifest records are not said to be kept."""
    import errno

    import safetensors.torch

    from gpu.atomic import scratch_prefix
    from gpu.streaming.disk_space import DiskSpaceError
    from gpu.streaming.parts_folder import kept_words

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    _partial(out, 1, lib)
    serialize = safetensors.torch.serialize_file

    def serialize_file(tensors, filename, *args, **kwargs):  # the second block of the new run: the disk is full
        if Path(filename).parent.name.startswith(scratch_prefix(parts / "block-0001.safetensors")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize_file)
    events = []
    with pytest.raises(DiskSpaceError) as failed:
        quantize_model(DEMO, out, _cfg(resume=False), events.append, library=lib, device=CPU)
    assert str(failed.value).endswith(
        f"; the calibration samples and 1 finished block are kept in {parts}, and a run with the same settings "
        "resumes from them, unless it is given --no-resume again")  # fmt: skip
    assert failed.value.hint == ("free some space on that disk, then run the same command again without --no-resume: "
                                 "it resumes from what is kept")  # fmt: skip
    assert sum(e.replacing_parts for e in events) == 1  # the old folder was replaced by the new run's

    (parts / "manifest.json").unlink()  # samples written, their manifest not (the disk was full): no run finds them
    for name in ("block-0000.safetensors", "block-0001.safetensors"):
        (parts / name).unlink(missing_ok=True)
    assert (parts / "samples.safetensors").is_file() and kept_words(parts) == ""


def test_a_file_put_in_the_parts_folder_during_the_run_stays_when_the_run_finishes(tmp_path):
    """A finished run deleted its parts folder wholesale, checked for the user's files only as the run began: a
    file saved there during the run (hours long for a big model) was deleted with it. Only what the engine wrote
    goes (a file manager's own files too); the folder stays with the user's files, said, and the run finishes."""
    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)

    def save_notes() -> bool:  # asked between layers: the user saves files in the folder the run works in
        if parts.is_dir() and not (parts / "notes.txt").exists():
            (parts / "notes.txt").write_text("the user's")
            (parts / "mine").mkdir()
            (parts / "mine" / "block-0000.safetensors").write_text("the user's too, whatever its name")
            (parts / ".DS_Store").write_bytes(b"Finder's")
        return False

    events = []
    assert quantize_model(DEMO, out, _cfg(), events.append, save_notes, library=ModelLibrary(tmp_path / "lib"),
                          device=CPU) == out  # fmt: skip
    load_checkpoint(out)  # the model is complete: checksum verified
    assert sorted(p.name for p in parts.iterdir()) == ["mine", "notes.txt"]  # the blocks, samples, manifest: gone
    assert (parts / "notes.txt").read_text() == "the user's"
    assert (parts / "mine" / "block-0000.safetensors").read_text() == "the user's too, whatever its name"
    assert events[-1].kind == "done" and events[-2].message == (
        f"{parts} is kept: it holds files the quantizer did not write (mine, notes.txt), which are not deleted; its "
        "own files there are. Move them elsewhere: a run into o.safetensors refuses the folder while they are in it")


def test_a_finished_run_whose_parts_folder_cannot_be_deleted_still_finishes(tmp_path, monkeypatch):
    """The parts folder's deletion, after the model was written and verified, failed the run (an OutputError) when
    a file in it could not be deleted (another program holding it open on Windows): the complete model was
    reported as a failed run. It is said, and the run finishes."""
    import errno
    import os

    out = tmp_path / "o.safetensors"
    unlink = os.unlink

    def held_open(path, *args, **kwargs) -> None:
        if os.path.basename(os.fsdecode(path)) == "block-0001.safetensors" and out.exists():
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", held_open)
    events = []
    assert quantize_model(DEMO, out, _cfg(), events.append, library=ModelLibrary(tmp_path / "lib"), device=CPU) == out
    load_checkpoint(out)
    parts = parts_dir(out)
    assert "manifest.json" not in {p.name for p in parts.iterdir()}  # first: never taken as resumable
    assert events[-1].kind == "done" and events[-2].message == (
        f"{parts} could not be deleted ({parts / 'block-0001.safetensors'}: Permission denied); o.safetensors is "
        "complete, and the folder is of no use now: delete it yourself")


def test_a_run_on_a_folder_of_other_settings_says_as_it_begins_that_it_replaces_it_and_what_resumes_it(tmp_path):
    """A run on an output whose parts folder was made with other settings said nothing of it until, minutes of
    calibration later, it deleted it: stopped before, its caller said the blocks were kept for the same command to
    resume, which deletes them. It is said as the run's first event, with what differs and the settings a run on
    this source resumes the folder with (the very ones: such a run resumes it), or None where none do."""
    from dataclasses import replace

    from gpu.quantizer.config import PartsToReplace
    from gpu.streaming.resume import ANOTHER_VERSION, NO_MANIFEST

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    old = _partial_with(out, 1, lib, _cfg(rank=8, seed=3))
    events = []
    with pytest.raises(Cancelled):  # stopped while it records its samples
        quantize_model(DEMO, out, _cfg(rank=16), events.append, _after_calls(1), library=lib, device=CPU)
    first = events[0]
    assert first.to_replace == PartsToReplace("rank 8 -> 16, seed 3 -> 0", {"rank": 8, "seed": 3})
    assert first.message == (f"{parts} was made with other settings (rank 8 -> 16, seed 3 -> 0): it is deleted once "
                             "the calibration samples are recorded, and with it the finished block; a run stopped "
                             "before then leaves it as it is")  # fmt: skip
    assert [e for e in events if e.to_replace] == [first] and not any(e.replacing_parts for e in events)
    assert json.loads((parts / "manifest.json").read_text()) == old

    events = []
    with pytest.raises(Cancelled):  # with the settings named: resumed, nothing replaced
        quantize_model(DEMO, out, replace(_cfg(rank=16), **first.to_replace.resume_with), events.append,
                       lambda: any("resuming" in e.message for e in events), library=lib, device=CPU)  # fmt: skip
    assert "resuming: 1/6 blocks already done" in [e.message for e in events]
    assert not any(e.to_replace or e.replacing_parts for e in events)

    asked = []  # asked to start over: the settings it was made with, the run's own rank aside
    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(rank=8, resume=False), asked.append, _after_calls(1), library=lib,
                       device=CPU)  # fmt: skip
    assert asked[0].to_replace == PartsToReplace("seed 3 -> 0", {"seed": 3})
    asked = []
    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(rank=8, seed=3, resume=False), asked.append, _after_calls(1), library=lib,
                       device=CPU)  # fmt: skip
    assert asked[0].to_replace == PartsToReplace("", {})  # its own settings: resumed without being asked

    manifest = json.loads((parts / "manifest.json").read_text())
    older = {"key": "an older quantizer's", "done": manifest["done"]}  # no settings kept
    for written, differs in (older, ANOTHER_VERSION), (b"\xff{", NO_MANIFEST):
        (parts / "manifest.json").write_bytes(written if isinstance(written, bytes) else json.dumps(written).encode())
        events = []
        with pytest.raises(Cancelled):  # no settings of this version's resume it
            quantize_model(DEMO, out, _cfg(rank=8, seed=3), events.append, _after_calls(1), library=lib, device=CPU)
        assert events[0].to_replace == PartsToReplace(differs, None)


def _engine_files(parts: Path) -> dict[str, bytes]:
    """A parts folder of another output, as the engine writes it (hand-made: only the names matter here)."""
    parts.mkdir()
    files = {"manifest.json": b'{"done": {}}', "samples.safetensors": b"samples", "block-0000.safetensors": b"block"}
    for name, data in files.items():
        (parts / name).write_bytes(data)
    (parts / "act0").mkdir()
    (parts / "act0" / "0.safetensors").write_bytes(b"spilled")
    return files


def test_a_parts_folder_replaced_by_a_link_during_the_run_is_not_deleted_through_it(tmp_path):
    """The end of a run deleted the engine's names through a parts folder replaced by a symbolic link meanwhile:
    the manifest, samples, blocks and spilled inputs of another output's parts folder, the link's target. The
    folder is looked at with lstat first, by the rule of the run's first check: a link or a file is not deleted,
    and said."""
    from gpu.streaming.parts_folder import remove_finished_parts

    other = parts_dir(tmp_path / "other.safetensors")
    files = _engine_files(other)
    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    parts.symlink_to(other, target_is_directory=True)
    assert remove_finished_parts(parts, out) == (f"{parts} is not deleted: it is a symbolic link now, not the "
                                                  "quantizer's folder; o.safetensors is complete")  # fmt: skip
    assert {name: (other / name).read_bytes() for name in files} == files
    assert (other / "act0" / "0.safetensors").read_bytes() == b"spilled" and parts.is_symlink()
    parts.unlink()
    parts.write_bytes(b"the user's")
    assert remove_finished_parts(parts, out).startswith(f"{parts} is not deleted: it is a file now")
    assert parts.read_bytes() == b"the user's"


def test_only_the_names_the_engine_writes_go_with_the_parts_folder_and_one_gone_already_is_done(tmp_path):
    """The engine's names were matched with "$", which matches before a trailing newline too ("manifest.json\\n",
    a name a user's file can have), and "act\\d?" took a user's folder "act7" for spilled inputs: both were
    deleted. A parts folder deleted meanwhile was said to be one that "could not be deleted (No such file or
    directory) … delete it yourself"."""
    from gpu.atomic import scratch_prefix
    from gpu.streaming.parts_folder import remove_finished_parts

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    _engine_files(parts)
    (parts / "act").mkdir()
    (parts / ".tmpab12cd").write_bytes(b"safetensors' scratch")
    (parts / f"{scratch_prefix(parts / 'block-0001.safetensors')}abcd1234.tmp").mkdir()  # an atomic write's
    (parts / "act7").mkdir()
    (parts / "act7" / "notes.txt").write_text("the user's")
    (parts / "manifest.json\n").write_text("the user's too")
    assert remove_finished_parts(parts, out) == (
        f"{parts} is kept: it holds files the quantizer did not write (act7, manifest.json\n), which are not deleted; "
        "its own files there are. Move them elsewhere: a run into o.safetensors refuses the folder while they are "
        "in it")  # fmt: skip
    assert sorted(p.name for p in parts.iterdir()) == ["act7", "manifest.json\n"]
    assert (parts / "act7" / "notes.txt").read_text() == "the user's"
    shutil.rmtree(parts)
    assert remove_finished_parts(parts, out) == ""  # what was asked is done


def test_delete_unfinished_run_keeps_a_file_saved_after_it_looked(tmp_path, monkeypatch):
    """``delete_unfinished_run`` looked for the user's files, then deleted the folder wholesale: a file saved in
    between went with it. Only the engine's files go, then the folder if empty: such a file stays, said."""
    import gpu.streaming.unfinished as unfinished
    from gpu.errors import OutputError

    parts = parts_dir(tmp_path / "o.safetensors")
    _engine_files(parts)
    look = unfinished.foreign_entries

    def saved_after_the_look(folder: Path) -> list[str]:
        seen = look(folder)
        (folder / "notes.txt").write_text("the user's")
        monkeypatch.setattr(unfinished, "foreign_entries", look)
        return seen

    monkeypatch.setattr(unfinished, "foreign_entries", saved_after_the_look)
    with pytest.raises(OutputError) as kept:
        unfinished.delete_unfinished_run(parts)
    assert str(kept.value) == (f"{parts} is kept: it holds files the quantizer did not write (notes.txt), which are "
                               "not deleted; its own files there are")  # fmt: skip
    assert [p.name for p in parts.iterdir()] == ["notes.txt"] and (parts / "notes.txt").read_text() == "the user's"


def test_a_file_saved_as_the_run_says_it_replaces_the_folder_is_kept(tmp_path):
    """A run replacing a folder made with other settings checked it for the user's files, said that it deletes it
    (an event: its callback runs the caller's code), then deleted it wholesale: a file saved meanwhile went with
    it. Only the engine's files go; the file stays, with the folder, said, and the run goes on beside it."""
    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    lib = ModelLibrary(tmp_path / "lib")
    old = _partial_with(out, 1, lib, _cfg(rank=8))
    events = []

    def on_event(event) -> None:
        events.append(event)
        if event.replacing_parts:
            (parts / "notes.txt").write_text("the user's")

    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(), on_event, _once_replaced(out, old["key"]), library=lib, device=CPU)
    assert (parts / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "notes.txt", "samples.safetensors"]
    said = [e.message for e in events]
    assert said[said.index(next(e.message for e in events if e.replacing_parts)) + 1] == (
        f"{parts} is kept: it holds files the quantizer did not write (notes.txt), which are not deleted; its own "
        "files there are. Move them elsewhere: a run into o.safetensors refuses the folder while they are in it")


def _touched(pipeline: Path) -> None:
    """Writes a file of ``pipeline``'s tokenizer again, as far as its time tells: a minute later."""
    import os

    tokenizer = next(p for p in sorted((pipeline / "tokenizer").iterdir()) if p.is_file())
    os.utime(tokenizer, ns=(tokenizer.stat().st_atime_ns, tokenizer.stat().st_mtime_ns + 60 * 10**9))


OTHER_CALIBRATION = "other text encoders, tokenizers or scheduler (or their files changed since)"


def test_a_single_file_calibrated_with_another_base_is_said_to_resume_with_that_base(tmp_path):
    """A single file's parts folder made with another --base (other text encoders, tokenizers or scheduler) was
    said to be resumed by no settings ("no options of this command resume it"), yet the command with the --base it
    was made with resumes it. The engine says so, naming that base, which the folder records
    (``PartsToReplace.other_base``)."""
    from dataclasses import replace

    from gpu.quantizer.config import PartsToReplace

    single = save_bfl_transformer(DEMO, tmp_path / "flux-demo.safetensors")
    other = pipeline_copy(DEMO, tmp_path / "other-base")
    _touched(other)
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    _partial_with(out, 1, lib, _cfg(base=str(DEMO), rank=8), single)
    events = []
    config = _cfg(base=str(other), rank=16)
    with pytest.raises(Cancelled):
        quantize_model(single, out, config, events.append, _after_calls(1), library=lib, device=CPU)
    assert events[0].to_replace == PartsToReplace(f"rank 8 -> 16, {OTHER_CALIBRATION}", {"rank": 8}, str(DEMO))
    events = []
    with pytest.raises(Cancelled):  # as said: with that base and those settings, resumed
        quantize_model(single, out, replace(config, base=str(DEMO), rank=8), events.append,
                       lambda: any("resuming" in e.message for e in events), library=lib, device=CPU)  # fmt: skip
    assert "resuming: 1/6 blocks already done" in [e.message for e in events]


def test_a_single_file_whose_own_base_changed_since_is_said_to_resume_with_no_base(tmp_path):
    """A single file's parts folder made with the run's own --base, whose tokenizer was written again since, was
    said to resume "with --base naming the pipeline it was made with": that is the run's base, and no --base
    resumes the folder. (A folder that records no base: the test below.)"""
    from gpu.quantizer.config import PartsToReplace

    single = save_bfl_transformer(DEMO, tmp_path / "flux-demo.safetensors")
    base = pipeline_copy(DEMO, tmp_path / "base")
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    made = resume_key(single, _cfg(base=str(base), rank=8), lib, CPU)
    parts = _folder(parts_dir(out), made.settings, {"transformer_blocks.0": {}})
    manifest = json.loads((parts / "manifest.json").read_text())
    (parts / "manifest.json").write_text(json.dumps({**manifest, "base pipeline": str(base)}))
    _touched(base)
    events = []
    with pytest.raises(Cancelled):
        quantize_model(single, out, _cfg(base=str(base), rank=16), events.append, _after_calls(0), library=lib,
                       device=CPU)  # fmt: skip
    assert events[0].to_replace == PartsToReplace(f"rank 8 -> 16, {OTHER_CALIBRATION}", None)


@pytest.mark.parametrize("recorded", [False, True], ids=["made before the record", "recorded"])
def test_a_single_file_whose_folder_records_no_base_is_said_to_resume_with_no_base(tmp_path, recorded):
    """A single file's parts folder made with another --base before folders recorded their base pipeline names no
    base that resumes it: the engine cannot prove one does, and says no setting resumes it (``other_base`` "", no
    ``resume_with``), where the same folder recording that base names it."""
    from gpu.quantizer.config import PartsToReplace

    single = save_bfl_transformer(DEMO, tmp_path / "flux-demo.safetensors")
    base, other = pipeline_copy(DEMO, tmp_path / "base"), pipeline_copy(DEMO, tmp_path / "other-base")
    _touched(other)  # another calibration than the run's base
    out = tmp_path / "o.safetensors"
    lib = ModelLibrary(tmp_path / "lib")
    made = resume_key(single, _cfg(base=str(other), rank=8), lib, CPU)
    parts = _folder(parts_dir(out), made.settings, {"transformer_blocks.0": {}})
    if recorded:
        manifest = json.loads((parts / "manifest.json").read_text())
        (parts / "manifest.json").write_text(json.dumps({**manifest, "base pipeline": str(other)}))
    events = []
    with pytest.raises(Cancelled):
        quantize_model(single, out, _cfg(base=str(base), rank=16), events.append, _after_calls(0), library=lib,
                       device=CPU)  # fmt: skip
    differs = f"rank 8 -> 16, {OTHER_CALIBRATION}"
    assert events[0].to_replace == (PartsToReplace(differs, {"rank": 8}, str(other)) if recorded
                                    else PartsToReplace(differs, None))  # fmt: skip


@pytest.mark.parametrize("tag, deleted", [(0xA0000003, False), (0x9000601A, True)], ids=["junction", "onedrive"])
def test_a_parts_folder_that_is_a_windows_junction_is_not_deleted_through_it(tmp_path, monkeypatch, tag, deleted):
    """A Windows junction is a folder to lstat (not S_ISLNK): the end of a run deleted the engine's names in its
    target, another output's parts. A junction's reparse tag says it; a OneDrive folder's (files on demand, another
    tag) is the user's own folder, deleted as any. Simulated here: lstat reports the tag Windows gives."""
    from types import SimpleNamespace

    from gpu.streaming.parts_folder import remove_finished_parts

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    files = _engine_files(parts)
    real_lstat = Path.lstat

    def lstat(path: Path):
        status = real_lstat(path)
        if path == parts:
            return SimpleNamespace(st_mode=status.st_mode, st_reparse_tag=tag)
        return status

    monkeypatch.setattr(Path, "lstat", lstat)
    said = remove_finished_parts(parts, out)
    if deleted:
        assert said == "" and not parts.exists()
    else:
        assert said == (f"{parts} is not deleted: it is a junction (a link to another folder) now, not the "
                        "quantizer's folder; o.safetensors is complete")  # fmt: skip
        assert {name: (parts / name).read_bytes() for name in files} == files


def test_a_windows_junction_is_neither_listed_nor_taken_as_losing_nothing(tmp_path, monkeypatch):
    """The unfinished runs and ``discards_nothing`` told a link by ``is_symlink``, which a Windows junction is not:
    listed, its Delete was refused (``not_a_folder``); the one rule is now theirs too. Simulated as above."""
    from types import SimpleNamespace

    from gpu.streaming.parts_folder import discards_nothing
    from gpu.streaming.unfinished import unfinished_runs

    out = tmp_path / "o.safetensors"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "act0").mkdir()  # only what a killed run leaves: a plain folder of it loses nothing
    assert discards_nothing(parts) and [run.parts for run in unfinished_runs(tmp_path)] == [parts]
    real_lstat = Path.lstat

    def lstat(path: Path):
        status = real_lstat(path)
        return SimpleNamespace(st_mode=status.st_mode, st_reparse_tag=0xA0000003) if path == parts else status

    monkeypatch.setattr(Path, "lstat", lstat)
    assert not discards_nothing(parts) and unfinished_runs(tmp_path) == []
