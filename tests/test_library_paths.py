"""Models added from a Hugging Face cache, through links, or twice under other paths.

A cache keeps each file once, as ``blobs/<sha256>`` without a suffix, and each revision as
``snapshots/<commit>/<name>``, links to the blobs: an SVDQ file there could not be added (its kind was read from
the blob's name), a pipeline snapshot was listed under its commit hash, and the repository folder
(``models--org--name``) itself was "not a diffusers pipeline folder". A hard link to a listed file was listed a
second time; a copy was listed as "m-2" without a word."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from gpu.library import ModelLibrary
from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cached(hub: Path, repo: str, files: dict[str, Path], commit: str = COMMIT) -> Path:
    """``files`` (name in the repository -> file to copy) in a Hugging Face cache at ``hub`` as huggingface_hub
    lays them out (blobs, a snapshot of links, refs/main); returns the repository's folder."""
    root = hub / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    for name, source in files.items():
        data = source.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return root


def _demo_files() -> dict[str, Path]:
    return {f.relative_to(DEMO).as_posix(): f for f in DEMO.rglob("*") if f.is_file()}


def test_an_svdq_file_in_a_hugging_face_cache_is_added_under_its_own_name(tmp_path):
    root = _cached(tmp_path / "hub", "someone/flux-svdq", {"flux-int4.safetensors": DEMO_INT4})
    link = root / "snapshots" / COMMIT / "flux-int4.safetensors"
    library = ModelLibrary(tmp_path / "data")
    entry = library.add(link)  # was: "flux-int4.safetensors … not a model" (the blob's name has no suffix)
    assert (entry.name, entry.kind, entry.already_added) == ("flux-int4", "svdq", False)
    listed = {e.name: e for e in library.entries()}["flux-int4"]
    assert listed.facts is not None and listed.facts.kind == "svdq"  # and it opens again when listed
    assert library.add(link).already_added  # the same blob, picked again
    assert library.resolve(str(link)).facts.kind == "svdq"  # generate --model PATH too


def test_a_pipeline_snapshot_is_named_after_its_repository_and_the_repository_folder_is_its_snapshot(tmp_path):
    root = _cached(tmp_path / "hub", "black-forest-labs/FLUX.1-tiny", _demo_files())
    library = ModelLibrary(tmp_path / "data")
    entry = library.add(root)  # was: "not a diffusers pipeline folder (model_index.json or transformer/ missing)"
    assert (entry.name, entry.kind) == ("FLUX.1-tiny", "diffusers")  # not the commit hash
    assert entry.path == root / "snapshots" / COMMIT
    again = library.add(root / "snapshots" / COMMIT)
    assert again.already_added and again.name == "FLUX.1-tiny"
    assert library.resolve(str(root)).path == root / "snapshots" / COMMIT


def test_the_snapshot_refs_main_names_is_taken_over_a_newer_one(tmp_path):
    root = _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files())
    newer = "f" * 40
    _cached(tmp_path / "hub", "org/FLUX.1-tiny", _demo_files(), commit=newer)  # refs/main now names it
    (root / "refs" / "main").write_text(COMMIT)  # the user's checkout went back to the first
    assert ModelLibrary(tmp_path / "data").add(root).path == root / "snapshots" / COMMIT
    (root / "refs" / "main").unlink()  # no ref: the newest snapshot
    os.utime(root / "snapshots" / newer, (2e9, 2e9))
    assert ModelLibrary(tmp_path / "data2").add(root).path == root / "snapshots" / newer


def test_a_hard_link_to_a_listed_file_is_the_listed_entry(tmp_path):
    mine = tmp_path / "models" / "mine.safetensors"
    mine.parent.mkdir()
    shutil.copyfile(DEMO_INT4, mine)
    library = ModelLibrary(tmp_path / "data")
    library.add(mine)
    hard = tmp_path / "elsewhere" / "hard.safetensors"
    hard.parent.mkdir()
    os.link(mine, hard)
    entry = library.add(hard)  # was: a second entry, "hard"
    assert entry.already_added and entry.name == "mine"
    assert [e.name for e in library.entries() if not e.builtin] == ["mine"]


def test_a_copy_of_a_listed_svdq_file_is_listed_with_a_note(tmp_path):
    mine = tmp_path / "a" / "mine.safetensors"
    copy = tmp_path / "b" / "mine.safetensors"
    for path in (mine, copy):
        path.parent.mkdir()
        shutil.copyfile(DEMO_INT4, path)
    library = ModelLibrary(tmp_path / "data")
    library.add(mine)
    assert library.take_notices() == []
    entry = library.add(copy)
    assert entry.name == "mine-2" and not entry.already_added  # another file: listed (it may be moved later)
    (notice,) = library.take_notices()  # was: nothing said
    assert str(notice).startswith(f"'mine-2' ({copy}) has the same content as 'mine' ({mine})")
