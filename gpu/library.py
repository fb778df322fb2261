"""The model library: built-in models shipped in ``resources/models`` plus folders/files the user adds.

User entries persist in ``<data dir>/library.json`` (versioned, written atomically). A file this version cannot
parse is moved aside as damaged; one from a newer version is copied aside before this version rewrites it with
only what it knows. Either way the library says so in ``take_notices`` (the CLI prints them, the app shows them)."""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePath

from gpu.atomic import atomic_write_bytes
from gpu.damaged_files import copy_aside, move_aside
from gpu.errors import ModelLoadError, UserError
from gpu.library_found import REMOVED, unlisted_field
from gpu.model_files import ModelFacts, inspect_model_path, model_path_there, unreadable_model
from gpu.paths import named_path, resources_dir, same_file, user_data_dir
from gpu.safetensors_header import MODEL_AGAIN

log = logging.getLogger(__name__)

LIBRARY_FILE = "library.json"
LIBRARY_VERSION = 1
DEFAULT_MODEL = "demo"
HF_REPO_PREFIX = "models--"  # a Hugging Face cache's folder of a repository: models--<org>--<name>


@dataclass
class ModelEntry:
    name: str
    path: Path
    builtin: bool
    facts: ModelFacts | None = None  # None when the entry's file is missing or unreadable
    problem: str = ""  # why it cannot be used (facts None)
    hint: str = ""  # what to do about ``problem`` ("update Nibble Studio, or re-quantize…"), as the engine says it
    missing: bool = False  # nothing is at its path (moved, deleted, its drive away), not merely unusable
    already_added: bool = False  # add() found this file or folder listed already: nothing was written

    @property
    def kind(self) -> str:
        return self.facts.kind if self.facts else "missing"

    @property
    def problem_text(self) -> str:
        """``problem`` and ``hint`` on one line, as the command line prints an error: "what is wrong (what to
        try)"; "" for a usable entry."""
        return UserError(self.problem, self.hint).text if self.problem else ""


def builtin_models() -> dict[str, Path]:
    """Name -> path of models shipped in resources/models (folders and SVDQ files)."""
    root = resources_dir() / "models"
    found: dict[str, Path] = {}
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and (p / "model_index.json").is_file():
                found[p.name] = p
            elif p.suffix == ".safetensors":
                found[p.stem] = p
    return found


def _newer_version(raw: bytes) -> int | None:
    """The version of a library file written by a newer version of the app, else None."""
    try:
        version = json.loads(raw).get("version")
    except (ValueError, RecursionError, AttributeError):
        return None
    newer = isinstance(version, int) and not isinstance(version, bool) and version > LIBRARY_VERSION
    return version if newer else None


def _parse_library(raw: bytes) -> dict[str, Path]:
    """name -> path from ``library.json``'s bytes; ValueError for anything but the format ``_save`` writes."""
    # The bytes, not their UTF-8 text: json reads a file saved with a byte order mark (Windows Notepad, PowerShell 5)
    # too. UnicodeDecodeError and JSONDecodeError are ValueErrors.
    data = json.loads(raw)
    models = data.get("models", []) if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError("not a model library")
    if not all(isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("path"), str)
               for e in models):  # fmt: skip
        raise ValueError("an entry without a name or path")
    return {e["name"]: Path(e["path"]) for e in models}


class ModelLibrary:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or user_data_dir()
        self.file = self.data_dir / LIBRARY_FILE
        self._notices: list[UserError] = []
        self._renames_told: set[tuple[str, Path]] = set()  # said once even when the new names cannot be saved

    def take_notices(self) -> list[UserError]:
        """What happened to the user's library file since the last call (kept aside as damaged, or copied aside
        as a newer version's): message and hint for the user, who would otherwise only see models vanish."""
        notices, self._notices = self._notices, []
        return notices

    def _user_paths(self) -> dict[str, Path]:
        if not self.file.is_file():
            return {}
        try:
            raw = self.file.read_bytes()
        except OSError as err:
            # Not damaged, only unreadable (permissions, a failing disk): moving it aside or starting empty
            # would make the next save replace the user's models with an empty list.
            raise UserError(
                f"cannot read the model library {self.file}: {err.strerror or err}",
                "check the file's permissions (the app and the CLI need to read and write it)",
            ) from None
        try:
            paths = _parse_library(raw)
        except (ValueError, RecursionError) as err:
            # A damaged library file must not stop the app; keep a copy for the user and start empty.
            aside = move_aside(self.file)
            # INFO: the notice below is what the user reads (the CLI prints it, the app shows it), once
            log.info("model library %s is damaged (%s); kept as %s, starting empty", self.file, err, aside)
            self._notices.append(UserError(
                f"Your model library {self.file} could not be read (it is damaged, or was written by a newer "
                f"version of Nibble Studio in a form this one does not know). It was kept as {aside.name}, and the "
                "list of models you added starts empty; the built-in models are unaffected.",
                "add your models again (their files were not touched); the kept copy names them"))  # fmt: skip
            return {}
        return self._renamed_clear_of_builtins(paths)

    def _renamed_clear_of_builtins(self, paths: dict[str, Path]) -> dict[str, Path]:
        """``paths`` with every user entry named like a built-in model renamed ``<name>-2``, ``-3``, ….

        A later version can ship a built-in under a name the user already gave a model of their own (or the file
        was edited by hand); the built-in wins that name, and the user's model would otherwise vanish from the
        list. The new name is saved; the user is told once (per library object when it cannot be saved)."""
        builtins = builtin_models()
        if not any(n in builtins for n in paths):
            return paths
        renamed: dict[str, Path] = {}
        for name, path in paths.items():
            final = name
            if name in builtins:
                final = next(f"{name}-{i}" for i in itertools.count(2)
                             if f"{name}-{i}" not in builtins and f"{name}-{i}" not in paths
                             and f"{name}-{i}" not in renamed)  # fmt: skip
                if (name, path) not in self._renames_told:
                    self._renames_told.add((name, path))
                    self._notices.append(UserError(
                        f"Your model {name!r} ({path}) is now listed as {final!r}: this version of Nibble Studio "
                        f"ships a built-in model of that name.", f"select {final!r} to use your model"))  # fmt: skip
            renamed[final] = path
        try:
            self._save(renamed)
        except UserError as err:  # a read-only data folder: listed under the new names all the same
            log.warning("could not save the renamed model library: %s", err)
        return renamed

    def _save(self, paths: dict[str, Path], leave_out: dict[Path, str] | None = None) -> None:
        """Writes ``paths``; ``leave_out``: files to record as left off the list on purpose (path -> why), which
        the start-up's search of the models folder then does not add again (``gpu.library_found``)."""
        self._keep_newer_version()
        data: dict[str, object] = {"version": LIBRARY_VERSION,
                                   "models": [{"name": n, "path": str(p)} for n, p in paths.items()]}
        data.update(unlisted_field(self.file, paths.values(), leave_out or {}))
        atomic_write_bytes(self.file, json.dumps(data, indent=2).encode())

    def _keep_newer_version(self) -> None:
        """This version writes only each model's name and path: a newer version's file (other keys, other
        entries' fields) is copied aside first, so going back to that version loses nothing."""
        try:
            raw = self.file.read_bytes()
        except OSError:
            return  # no file yet; an unreadable one was refused when it was read
        version = _newer_version(raw)
        if version is None:
            return
        copy = copy_aside(self.file, raw, f"v{version}")
        self._notices.append(UserError(
            f"Your model library {self.file} was written by a newer version of Nibble Studio (library version "
            f"{version}). This version keeps only each model's name and path; the file as it was is kept as "
            f"{copy.name}.", "the newer version can use the kept copy (rename it back to library.json)"))  # fmt: skip

    def entries(self) -> list[ModelEntry]:
        """Built-in models first (demo first), then the user's, in the order they were added."""
        return [_entry(name, path, builtin) for name, path, builtin in self._listed()]

    def _listed(self) -> list[tuple[str, Path, bool]]:
        """(name, path read now, built-in) of each model in ``entries``' order, none inspected."""
        ordered = sorted(builtin_models().items(), key=lambda kv: (kv[0] != DEFAULT_MODEL, kv[0]))
        return [(n, p, True) for n, p in ordered] + [(n, current_path(p), False) for n, p in self._user_paths().items()]

    def path_of(self, name_or_path: str | Path) -> Path:
        """The path ``resolve`` would give ``name_or_path`` now, without inspecting any model (a header read per
        model of the library): what the library names it by now, as library.json says it at this moment (edited
        by hand, or another model added under the name since), else the path it is."""
        key = str(name_or_path)
        named = self.listed_path(key)
        return named if named is not None else current_path(named_path(key))

    def listed_path(self, name: str) -> Path | None:
        """The path the library lists under ``name`` now (``path_of`` without its path of that name), None where
        no model has that name; no model inspected."""
        return next((path for listed, path, _builtin in self._listed() if named_by(listed, name)), None)

    def add(self, path: Path | str, name: str | None = None) -> ModelEntry:
        """Validate ``path`` and add it; raises UserError with a plain reason when it is no usable model. A path
        listed already (built-in or added) gives its entry with ``already_added`` set, the file left as it is."""
        picked = named_path(path)  # a HF cache file links to a blob named by its hash
        path = current_path(picked)
        facts = _inspect(path)
        paths = self._user_paths()
        builtins = builtin_models()
        # The resolved file is a model's identity: the same file or folder picked again (through a symlink or a
        # hard link, with a trailing slash, relative; another snapshot of the same Hugging Face repository) is the
        # listed entry, not a second one under "<name>-2". It is returned before the SVDQ full check: that was
        # done when it was added, and reading gigabytes again says nothing.
        listed = [(n, p, True) for n, p in builtins.items()]
        listed += [(n, current_path(p), False) for n, p in paths.items()]
        for listed_name, listed_path, builtin in listed:
            if same_file(listed_path, path):
                return ModelEntry(listed_name, listed_path, builtin, facts, already_added=True)
        if facts.kind == "svdq":
            from gpu.checkpoint.verified import verify_checkpoint_once
            from gpu.errors import CheckpointError

            try:
                # Full check (sizes, checksum) before it enters the library; not again for a file this process
                # verified unchanged (the quantizer's output, just written and verified)
                verify_checkpoint_once(path)
            except CheckpointError as err:
                raise ModelLoadError(str(err), err.hint) from None
        taken = set(paths) | set(builtins)
        base = name or model_name(path)
        stored = _stored_path(picked)
        final, i = base, 2
        while final in taken and paths.get(final) != stored:
            final, i = f"{base}-{i}", i + 1
        paths[final] = stored
        self._save(paths)
        self._tell_same_content(final, facts, [(n, p) for n, p, builtin in listed if not builtin])
        return ModelEntry(final, path, False, facts)

    def _tell_same_content(self, name: str, facts: ModelFacts, listed: list[tuple[str, Path]]) -> None:
        """A notice when the SVDQ file just listed as ``name`` holds the same data as one the user listed before
        (a copy at another path, listed as "m-2" without a word; a copy of a built-in model is the user's own to
        change). The checksums are the ones the files' headers record, so no file is hashed for it."""
        if not facts.checksum:
            return
        for other, other_path in listed:
            if _recorded_checksum(other_path) == facts.checksum:
                self._notices.append(UserError(
                    f"{name!r} ({facts.path}) has the same content as {other!r} ({other_path}): the same model is "
                    f"listed twice", f"remove {name!r} from the library if you want it listed once"))  # fmt: skip
                return

    def remove(self, name: str) -> None:
        """Takes the user's model ``name`` off the list (not its file); refused, with the true reason, for a built-in
        model or a name not listed (removed already: a user's model was once called built-in there)."""
        paths = self._user_paths()
        if name in builtin_models():
            raise UserError(f"{name!r} is a built-in model: built-in models cannot be removed")
        if name not in paths:
            raise UserError(f"{self._not_found(name)}: nothing to remove (it may have been removed already)")
        # Its file stays: remembered as removed, so that one in the app's models folder is not found and added
        # again at the next start (gpu.library_found)
        removed = paths.pop(name)
        self._save(paths, {removed: REMOVED})

    def leave_out(self, path: Path, why: str) -> None:
        """Records the file at ``path`` as left off the list on purpose (``gpu.library_found``: e.g. found
        damaged), so that the start-up's search of the models folder passes over it while it is unchanged."""
        self._save(self._user_paths(), {path: why})

    def resolve(self, name_or_path: str | Path) -> ModelEntry:
        """A library name, or a path to a folder/SVDQ file, -> ModelEntry (raises ModelLoadError)."""
        key = str(name_or_path)
        if not key.strip():
            raise ModelLoadError("no model given (the name is empty)", "give a library name, a folder or an SVDQ file")
        entries = self.entries()
        for entry in entries:
            if named_by(entry.name, key):
                if entry.facts is None:  # a listed file gone: put back, or taken off the list (no hint of its own)
                    back = f"put the file back where it was (or connect its drive), or remove {entry.name!r} in " \
                        "the app's Models panel"  # fmt: skip
                    hint = entry.hint or (back if entry.missing else "")
                    raise ModelLoadError(f"model {key!r}: {entry.problem}", hint)
                return entry
        if model_path_there(Path(key).expanduser()):
            path = current_path(named_path(key))  # "." names no folder in a message; its absolute path does
            # A listed file given by its path goes by its library name: the image records that name, and restoring
            # it by the file's stem picked another file the library lists under it ("flux-int4" beside "flux-int4-2")
            listed = next((e for e in entries if same_file(e.path, path)), None)
            if listed is not None and listed.facts is not None:
                return listed
            facts = _inspect(path)  # before model_name, which looks at the path too: this names what is wrong
            return ModelEntry(listed.name if listed is not None else model_name(path), path, False, facts)
        raise ModelLoadError(self._not_found(key))

    def _not_found(self, key: str) -> str:
        """What ``resolve`` says of ``key``, neither a library name nor a file or folder: a name as a name, with the
        names there are; a path (``given_as_path``) as the absolute one it was looked for at, a relative one being
        read from the current folder, which the name alone hid. Both once said both: "no model named '/m/x' … and
        no file or folder /m/x" repeated the path, and the windowed app has no current folder a user knows of."""
        if given_as_path(key):
            return f"no file or folder {Path(key).expanduser().absolute()} (and no library model of that name)"
        listed = ", ".join(e.name for e in self.entries()) or "none"
        return f"no model named {key!r} in the library ({listed})"


def given_as_path(key: str) -> bool:
    """Whether ``key`` (a model asked for by name or path) reads as a path: it holds a folder separator, begins with
    ``~``, or names a .safetensors file (``inspect model.safetensors``). A library name does none of these."""
    separators = {os.sep, os.altsep} - {None}  # "/" is one on Windows too
    return any(sep in key for sep in separators) or key.startswith("~") or key.lower().endswith(".safetensors")


def named_by(name: str, key: str) -> bool:
    """Whether ``key`` names the library model ``name``: as it is, or escaped as an image's PNG holds a name that is
    not UTF-8 ("mod\\xe9le")."""
    from gpu.generation.png_metadata import encodable

    return name == key or encodable(name) == key


def hf_snapshot(folder: Path) -> Path | None:
    """The snapshot a Hugging Face cache folder ``models--org--name`` holds the files of: the revision its
    ``refs/main`` names, else the newest; None for any other path, and for one that holds no snapshot (the cache
    folder itself holds no model, and was "not a diffusers pipeline folder")."""
    snapshots = folder / "snapshots"
    if not folder.name.startswith(HF_REPO_PREFIX) or not snapshots.is_dir():
        return None
    try:
        main = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        main = ""
    if main and (snapshots / main).is_dir():
        return snapshots / main
    try:
        found = [d for d in snapshots.iterdir() if d.is_dir()]
        return max(found, key=lambda d: d.stat().st_mtime, default=None)
    except OSError:
        return None


def hf_repository(path: Path) -> tuple[Path, PurePath] | None:
    """(the repository folder ``models--org--name``, the place inside a snapshot) of ``path`` in a Hugging Face
    cache: the repository folder itself or a snapshot folder (inside: "."), or a file or folder in a snapshot
    (``snapshots/<commit>/flux-int4.safetensors``: "flux-int4.safetensors"); None for any other path."""
    if path.name.startswith(HF_REPO_PREFIX) and (path / "snapshots").is_dir():
        return path, PurePath()
    for snapshot in (path, *path.parents):
        if snapshot.parent.name == "snapshots" and snapshot.parent.parent.name.startswith(HF_REPO_PREFIX):
            return snapshot.parent.parent, PurePath(path.relative_to(snapshot))
    return None


def current_path(path: Path) -> Path:
    """Where the model listed as ``path`` is read now: in a Hugging Face cache, the same place in the repository's
    current snapshot (``hf_snapshot``), whichever snapshot it was picked in. A library entry stands for the
    repository, not one revision of it: a new revision downloaded was listed a second time ("<name>-2"), and the
    first entry went "missing" once its old revision was deleted. ``path`` itself for any other path, where the
    current snapshot lacks what ``path`` names while ``path`` is still there, and where the cache cannot be looked
    at (Permission denied, a stale NFS handle: what reads ``path`` names that)."""
    try:
        found = hf_repository(path)
        snapshot = hf_snapshot(found[0]) if found else None
        if found is None or snapshot is None:
            return path
        now = snapshot / found[1]
        return now if now.exists() or not path.exists() else path
    except OSError:
        return path


def _stored_path(picked: Path) -> Path:
    """What library.json records for a model picked as ``picked``: a Hugging Face snapshot folder as its
    repository folder, which ``current_path`` reads as its current snapshot; any other path as it is."""
    found = hf_repository(picked)
    return found[0] if found and found[1] == PurePath() else picked


def _inspect(path: Path) -> ModelFacts:
    """``inspect_model_path`` of a model at ``path`` (as ``current_path`` gives it), a Hugging Face repository
    folder whose every snapshot was deleted named as such (it was "not a diffusers pipeline folder")."""
    if path.name.startswith(HF_REPO_PREFIX) and (path / "snapshots").is_dir() and hf_snapshot(path) is None:
        raise ModelLoadError(f"{path}: this Hugging Face cache folder holds no downloaded revision of the model "
                             "(snapshots/ is empty)",
                             "download the model again, or remove it from the library")  # fmt: skip
    return inspect_model_path(path)


def model_name(path: Path) -> str:
    """The name a model at ``path`` gets in the library: a file's stem, a folder's name, and for a Hugging Face
    cache snapshot (``models--org--name/snapshots/<commit>``), named after a commit, the repository's name."""
    if path.is_file():
        return path.stem
    return snapshot_repo_name(path) or path.name


def snapshot_repo_name(path: PurePath) -> str:
    """The repository's name (``name``) of a Hugging Face cache snapshot folder ``models--org--name/snapshots/
    <commit>`` at ``path``, as the library names the model there; "" for any other path. Reads no disk: also for
    paths another program wrote (a ComfyUI graph's)."""
    repo = path.parent.parent.name
    if path.parent.name == "snapshots" and repo.startswith(HF_REPO_PREFIX):
        return repo.split("--", 2)[-1]
    return ""


def _recorded_checksum(path: Path) -> str:
    """The data checksum the SVDQ file at ``path`` records in its header; "" for a folder or any other file."""
    from gpu.checkpoint.format import read_checkpoint_meta

    try:
        return read_checkpoint_meta(path).sha256 if path.is_file() else ""
    except (UserError, OSError):  # OSError: a path the system will not look at (is_file raises then)
        return ""


def _entry(name: str, path: Path, builtin: bool) -> ModelEntry:
    """The library's entry for the model ``name`` at ``path``: its facts, or why it cannot be used and what to do,
    its problem alone: one model that cannot be read (a folder the user may not enter, a stale NFS handle, an I/O
    error) stopped the whole list, and with it the app's start and every command; so did one whose file fails in a
    way no check names (an exception of any kind: it is logged with its traceback)."""
    try:
        return ModelEntry(name, path, builtin, _inspect(path))
    except UserError as err:
        return ModelEntry(name, path, builtin, None, str(err), err.hint, _nothing_at(path))
    except OSError as err:  # deeper than the path itself (a component folder, a file of it), which _inspect names
        unreadable = unreadable_model(Path(err.filename) if err.filename else path, err)
        return ModelEntry(name, path, builtin, None, str(unreadable), unreadable.hint)
    except Exception as err:  # a case no check names yet: this model's problem, not the list's (its traceback logged)
        log.exception("model %r at %s could not be inspected", name, path)
        return ModelEntry(name, path, builtin, None, f"{path}: could not be read as a model ({type(err).__name__}: "
                          f"{err})", f"{MODEL_AGAIN} (the log has the details)")  # fmt: skip


def _nothing_at(path: Path) -> bool:
    """Whether nothing is at ``path`` (moved, deleted, its drive away), not merely unusable or unreadable."""
    try:
        return not model_path_there(path)
    except UserError:
        return False
