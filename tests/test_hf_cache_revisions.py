"""A model added from a Hugging Face cache is its repository, not one revision of it. The repository folder
(``models--org--name``) was pinned to the snapshot it named when added: the next revision, added again, became a
second entry "<name>-2", and once the old revision was deleted (``huggingface-cli delete-cache``) the first entry
was "missing" although the cache held the model."""

from __future__ import annotations

import json
import shutil

import pytest
from test_library_paths import COMMIT, DEMO_INT4, _cached, _demo_files

from gpu.library import ModelLibrary

NEWER = "f" * 40


def _user_entries(library: ModelLibrary) -> list:
    return [e for e in library.entries() if not e.builtin]


def test_a_new_revision_of_a_cached_pipeline_is_the_same_entry_and_the_old_one_may_go(tmp_path):
    root = _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files())
    library = ModelLibrary(tmp_path / "data")
    assert library.add(root).path == root / "snapshots" / COMMIT
    _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files(), commit=NEWER)  # refs/main names the new one
    again = library.add(root)  # was: listed again as "FLUX.1-tiny-2"
    assert (again.name, again.already_added, again.path) == ("FLUX.1-tiny", True, root / "snapshots" / NEWER)
    assert library.add(root / "snapshots" / COMMIT).already_added  # the old snapshot, picked itself: the same
    shutil.rmtree(root / "snapshots" / COMMIT)  # the old revision deleted
    (entry,) = _user_entries(library)
    assert (entry.name, entry.kind, entry.path) == ("FLUX.1-tiny", "diffusers", root / "snapshots" / NEWER)  # was:
    # "missing"
    assert library.resolve("FLUX.1-tiny").path == root / "snapshots" / NEWER


def test_an_entry_that_names_a_deleted_snapshot_reads_the_current_one(tmp_path):
    """A library.json written by the version that stored snapshot paths, and a file picked inside a snapshot."""
    root = _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files())
    svdq = _cached(tmp_path / "hub", "someone/flux-svdq", {"flux-int4.safetensors": DEMO_INT4})
    library = ModelLibrary(tmp_path / "data")
    library.add(svdq / "snapshots" / COMMIT / "flux-int4.safetensors")
    listed = json.loads(library.file.read_text())
    listed["models"].append({"name": "FLUX.1-tiny", "path": str(root / "snapshots" / COMMIT)})
    library.file.write_text(json.dumps(listed))
    _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files(), commit=NEWER)
    _cached(tmp_path / "hub", "someone/flux-svdq", {"flux-int4.safetensors": DEMO_INT4}, commit=NEWER)
    for repo in (root, svdq):
        shutil.rmtree(repo / "snapshots" / COMMIT)
    paths = {e.name: (e.kind, e.path) for e in _user_entries(library)}
    assert paths == {"flux-int4": ("svdq", svdq / "snapshots" / NEWER / "flux-int4.safetensors"),
                     "FLUX.1-tiny": ("diffusers", root / "snapshots" / NEWER)}  # fmt: skip


def test_a_repository_whose_every_revision_was_deleted_is_named(tmp_path):
    root = _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files())
    library = ModelLibrary(tmp_path / "data")
    library.add(root)
    shutil.rmtree(root / "snapshots" / COMMIT)
    (entry,) = _user_entries(library)
    assert entry.kind == "missing"
    assert entry.problem.startswith(f"{root}: this Hugging Face cache folder holds no downloaded revision of the "
                                    "model")  # fmt: skip


def test_a_base_pipeline_in_a_cache_is_read_in_its_current_revision(tmp_path):
    """An SVDQ file records its base's absolute path, a snapshot in a Hugging Face cache: once that revision was
    deleted (the current one there), generate said the base "was not found"; and --base with the repository folder
    (models--org--name, which stands for its current revision) said it "was not found (tried: …/models--org--name)"
    of a folder that is there. Both are read in the repository's current snapshot, as quantize --base reads them; a
    folder there that is no pipeline is said to be none."""
    from test_base_fit import with_recorded_base

    from gpu.errors import ModelLoadError
    from gpu.generation.pipeline_loader import resolve_base

    root = _cached(tmp_path / "hub", "org/flux-mini", _demo_files())
    model = with_recorded_base(tmp_path / "mini-int4.safetensors", {
        "name": "flux-mini", "path": str(root / "snapshots" / COMMIT), "relative_path": "nowhere"})  # fmt: skip
    _cached(tmp_path / "hub", "org/flux-mini", _demo_files(), commit=NEWER)  # refs/main -> it
    library = ModelLibrary(tmp_path / "data")  # which lists no flux-mini
    facts = library.resolve(str(model)).facts
    notes: list[str] = []  # the revision it was made with, still there: that one, not the newer (silently, it was)
    assert resolve_base(facts, library, None, notes) == root / "snapshots" / COMMIT and notes == []
    shutil.rmtree(root / "snapshots" / COMMIT)
    assert resolve_base(facts, library, None, notes) == root / "snapshots" / NEWER  # not the built-in demo standing in
    assert notes == ["the revision of the base pipeline mini-int4.safetensors was made with "
                     f"({root / 'snapshots' / COMMIT}) is no longer in the Hugging Face cache; it runs with the "
                     f"revision there now ({root / 'snapshots' / NEWER}), whose text encoders may not be the ones it "
                     "was calibrated with"]  # fmt: skip
    assert resolve_base(facts, library, str(root)) == root / "snapshots" / NEWER
    with pytest.raises(ModelLoadError) as refused:
        resolve_base(facts, library, str(tmp_path / "hub"))
    assert str(refused.value) == f"--base {tmp_path / 'hub'}: {tmp_path / 'hub'} is not a pipeline folder (it has no " \
        "model_index.json)"  # fmt: skip


def test_a_model_run_with_its_bases_current_revision_stays_loaded_between_jobs(tmp_path, monkeypatch):
    """A model whose recorded base snapshot is gone runs with the cache's current revision, said in its notes; a
    base run with a note is looked for again before each job (a stand-in gives way to the recorded base once it is
    here), and that look must find the same current revision: the model is loaded once, not at every job."""
    from test_base_fit import with_recorded_base

    import gpu.generation.service as service_module
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    root = _cached(tmp_path / "hub", "org/flux-mini", _demo_files())
    model = with_recorded_base(tmp_path / "mini-int4.safetensors", {
        "name": "flux-mini", "path": str(root / "snapshots" / COMMIT), "relative_path": "nowhere"})  # fmt: skip
    _cached(tmp_path / "hub", "org/flux-mini", _demo_files(), commit=NEWER)
    shutil.rmtree(root / "snapshots" / COMMIT)
    loads = []
    load_pipeline = service_module.load_pipeline
    monkeypatch.setattr(service_module, "load_pipeline", lambda *a, **k: loads.append(1) or load_pipeline(*a, **k))
    service = GenerationService(ModelLibrary(tmp_path / "data"))
    request = GenerationRequest("a red star", model=str(model), steps=1, width=64, height=64)
    (image,) = service.generate(request)
    assert [note.split(";")[0] for note in image.extras["notes"]] == [
        f"the revision of the base pipeline mini-int4.safetensors was made with ({root / 'snapshots' / COMMIT}) is "
        "no longer in the Hugging Face cache"]  # fmt: skip
    assert service.loaded.base_path == root / "snapshots" / NEWER and loads == [1]
    service.generate(request)
    service.generate(request)
    assert loads == [1]  # loaded once, for the three jobs
    assert service.is_loaded(str(model))  # as the app asks before each job (it says "Loading" when not)
