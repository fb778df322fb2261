"""Restoring an image's settings: the prompt panel, the model and the LoRAs filled from a gallery image or from
dropped files (ours, A1111/Forge, ComfyUI), each file read as what its content says it is, and one message for
what could not be restored as saved or why nothing could be."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.engine_errors import EngineError
from app.gallery_model import GalleryModel
from app.generation_state import PromptState
from app.history_model import prompt_line
from app.image_files import inspect_image_settings
from app.lora_hash_search import LoraHashSearch
from app.model_library import ModelLibrary
from app.model_list_state import usable
from app.store import ImageRecord
from app.valid_text import storable
from app.wording import counted, were
from gpu.errors import named_few
from gpu.generation.image_metadata import kind_by_name
from gpu.generation.png_metadata import ImageSettings
from gpu.model_hash import FilesStamp, known_model_hash
from gpu.version import APP_NAME

# What to drop instead of a file with no settings (the app's own dialogs say it the same way).
_EDITORS_REMOVE = "image editors and many sites remove the settings from the file."
DROP_HINT = ("Drop a PNG saved by Nibble Studio, A1111/Forge or ComfyUI, a JPEG, WebP or GIF saved by A1111/Forge, "
             f"or the .txt file A1111/Forge write beside an image, as it was saved: {_EDITORS_REMOVE}")  # fmt: skip
# What to reuse instead of a gallery image with no settings (imported from the images folder as it was saved).
REUSE_HINT = ("Reuse the settings of an image made here, or of one saved with its settings by A1111/Forge or ComfyUI: "
              f"{_EDITORS_REMOVE}")  # fmt: skip


def read_dropped(paths: list[Path]) -> list[ImageSettings]:
    """What each of the dropped ``paths`` holds, read in order up to the first that has settings (the one
    ``SettingsRestore.restore_from_files`` restores: those after it are named, not read). Reads the files: run on a
    thread of its own, never on the window's (``app.dropped_read``)."""
    found_in: list[ImageSettings] = []
    for path in paths:
        found_in.append(inspect_image_settings(path))
        if found_in[-1].settings:
            break
    return found_in


def _why_none(found: ImageSettings) -> str:
    """Why a file gave no settings (``found``: what was read from it), as a phrase about it."""
    return "; ".join(found.problems) or "it carries no generation settings"


def _nothing_restored(name: str, found: ImageSettings) -> str:
    """The sentence saying that nothing was restored from the file ``name`` and why (``_why_none``)."""
    return f"Nothing was restored from {name}: {_why_none(found)}."


class SettingsRestore:
    """Fills ``prompt`` (the prompt panel), the model of ``library`` and the LoRA panel (through ``loras``, its
    ``LoraState.hash_search``) from an image's settings; says by ``say`` (a dialog) what was not restored as saved,
    and gives ``restored`` the names of the fields set."""

    def __init__(self, prompt: PromptState, library: ModelLibrary, loras: LoraHashSearch, gallery: GalleryModel,
                 say: Callable[[EngineError], None], restored: Callable[[list[str]], None]) -> None:  # fmt: skip
        self._prompt = prompt
        self._library = library
        self._loras = loras
        self._gallery = gallery
        self._say = say
        self._restored = restored
        self._pending_model: tuple[str, str] | None = None  # (model, model hash) of an image restored before
        # The model files' stamps whose headers proved them the files hashed (``known_model_hash``): after a chmod,
        # every restore read every such file's header again on this thread
        self._confirmed: dict[FilesStamp, str] = {}

    def say_job_model(self, model: str) -> None:
        """A job is queued on ``model`` while the model of an image restored is still to be selected (once the
        engine has started): said, as the job's image is not the restored one's."""
        if self._pending_model is not None and self._pending_model[0] != model:
            # the job's model is the panel's; the image's comes once the library is known
            self._say(EngineError(
                "notice", f"This job runs on '{model}': the model of the image you restored, "
                f"'{self._pending_model[0]}', is selected once the engine has started.",
                "Generate again once it is selected to get the image back."))  # fmt: skip

    def restore_pending_model(self, jobs_idle: bool) -> None:
        """The engine is ready (the library known): the model of an image restored while it started is selected
        now, and a first launch's defaults dropped for it unless a job (``jobs_idle`` False) runs already."""
        if self._pending_model is None:
            return
        (model, recorded), self._pending_model = self._pending_model, None
        notes: list[str] = []
        if self._restore_model(model, recorded, notes) and jobs_idle:
            self._library.launch_fields = None  # the image's model, with the image's settings: no defaults
        for note in notes:
            self._say(EngineError("notice", f"The restored image's settings, {note}.",
                                  "Check the Models panel before you generate."))  # fmt: skip

    def reuse_settings(self, record: ImageRecord) -> None:
        """The gallery image ``record``'s settings in the prompt panel (model and LoRAs too), read from its file
        where the database keeps none; what could not be restored as saved is said (what the file could not give
        too, as a drop of it says), and why nothing was where the image has none (a plain PNG copied into the
        images folder: "Restored: nothing" in the status bar was all that was said)."""
        settings = dict(record.settings)
        # What the file holds that could not be read (LoRAs applied by a custom node), as a drop of it says: the
        # images folder's import keeps a foreign PNG's settings but not its reader's problems, so they are read again
        found = inspect_image_settings(self._gallery.path_of(record))
        problems = found.problems if found.settings else []
        if not settings:
            if not found.settings:
                self._say(EngineError("user", _nothing_restored(Path(record.path).name, found), REUSE_HINT))
                return
            settings = found.settings
        notes = problems + self._restore(settings)
        if notes:
            self._say_not_as_saved(Path(record.path).name, notes)

    def restore_from_files(self, paths: list[Path], web_addresses: list[str] | None,
                           found_in: list[ImageSettings]) -> ImageSettings | None:  # fmt: skip
        """Settings from dropped files (PNGs: ours, A1111 ``parameters`` or ComfyUI; JPEG and WebP: A1111/Forge
        EXIF), each read as what its content says it is: those of the first file that has some (one image's
        settings fill the form: the others are named as not used, not silently dropped); one message says what
        was not restored as saved, or why none could be ("it is a JPEG image, not a PNG", "it is a text file, not
        an image"). ``web_addresses``: what a drag from a web browser carries instead of a file (the image is not
        on this computer yet); named with the other images not used when a file gave settings, or alone when no
        file was dropped. ``found_in``: what ``read_dropped`` read of ``paths`` (on a thread: a file on a hung share
        froze the window here). Returns what was read from the file restored (None: none was)."""
        web = web_addresses or []
        shown = named_few([prompt_line(url, 80) for url in web])  # a data: address may be megabytes
        one = len(web) == 1
        save = f"save the image{'' if one else 's'} first, then drop the file{'' if one else 's'}"
        if not paths and web:  # a web browser's drag: said, not refused without a word
            what = "is a web address" if one else "are web addresses"
            self._say(EngineError("user", f"Nothing was restored: {shown} {what}: {save}.", DROP_HINT))
            return None
        without: list[str] = []
        for index, (path, found) in enumerate(zip(paths, found_in, strict=False)):
            if not found.settings:
                if len(paths) == 1 and not web:
                    self._say(EngineError("user", _nothing_restored(path.name, found), DROP_HINT))
                    return None
                without.append(f"{path.name} ({_why_none(found)})")
                continue
            notes = found.problems + self._restore(found.settings)
            unused = [p.name for p in paths[index + 1 :]]
            if unused:
                notes.append(f"the other dropped images ({', '.join(unused)}) were not used: the form holds one "
                             "image's settings")  # fmt: skip
            if without:
                notes.append(f"{', '.join(without)}, dropped before it, carry no generation settings")
            if web:  # dragged along with the file (a browser's and a file manager's in one drag): not ignored
                notes.append(f"the dropped web address{'' if one else 'es'} {shown} {were(len(web))} not used "
                             f"({save})")  # fmt: skip
            if notes:
                several = len(paths) + len(web) > 1
                self._say_not_as_saved(path.name, notes, " Drop one image at a time." if several else "")
            return found
        dropped = "images" if all(kind_by_name(p) for p in paths) else "files"  # a folder, a text file: no image
        if web:  # dragged along with the files: named with them, not ignored
            without.append(f"{shown} ({'a web address' if one else 'web addresses'}: {save})")
        self._say(EngineError(
            "user", f"None of the dropped {dropped} carries generation settings: {', '.join(without)}.",
            DROP_HINT))  # fmt: skip
        return None

    def _say_not_as_saved(self, name: str, notes: list[str], more_hint: str = "") -> None:
        self._say(EngineError(
            "notice", f"Settings restored from {name}, but not all as saved: {'; '.join(notes)}.",
            f"Check the prompt panel before you generate.{more_hint}"))  # fmt: skip

    def _restore(self, settings: dict[str, Any]) -> list[str]:
        """Fills the form (and model, LoRAs) from ``settings`` -> what the form did not take as saved."""
        settings, notes = _valid_texts(settings)
        applied, form_notes = self._prompt.restore_settings(settings)
        notes += form_notes
        self._library.keep_fields(applied)  # a first launch's model defaults, still to come, skip what it set
        model, recorded = settings.get("model"), str(settings.get("model_hash") or "")
        if model and self._library.known:
            applied += self._restore_model(str(model), recorded, notes)
        elif model:  # the library is listed once the engine is ready: every model was "not in your library"
            self._pending_model = (str(model), recorded)
        ours, refs = str(settings.get("version", "")).startswith(APP_NAME), settings.get("lora_refs")
        if ours and ("lora_list" in settings or not isinstance(refs, list)):  # no lora_list: made without LoRAs
            # several rows of a file name: the one with the image's hash is looked for (as for refs), said when found
            self._loras.restore_used(settings.get("lora_list") or [], self._say_loras_not_used,
                                     self._say_loras_not_found)  # fmt: skip
            applied.append("loras")
        elif isinstance(refs, list):  # another program's (or ours, its A1111 text alone): LoRAs by name and hash
            self._restore_refs(refs)
            applied.append("loras")
        else:  # no LoRAs could be read (a ComfyUI graph of custom nodes): the panel stays, none is switched off for it
            self._loras.keep_panel()  # nor on for an image dropped before
        self._restored(applied)
        return notes

    def _restore_model(self, model: str, recorded: str, notes: list[str]) -> list[str]:
        """Selects the library's model for an image made with ``model`` whose weights hashed to ``recorded``
        (``_image_model``), with a note in ``notes`` when it is not that file; says so when there is none that
        opens. -> ["model"] when one was selected, else []."""
        entry, note = self._image_model(model, recorded)
        if note:
            notes.append(note)
        if entry is not None and usable(entry):
            self._library.select_model(entry.name, apply_defaults=False)  # its name, not the image's escaped one
            self._library.drop_kept()  # the image's model, the one in use too, is the user's word: saved from now on
            return ["model"]
        # the same settings on another model give another image: say so rather than let it pass
        self._say(EngineError(
            "notice", f"The image was made with the model '{model}', which "
            f"{'cannot be opened here' if entry is not None else 'is not in your library'}. Its other "
            f"settings were restored; new images use '{self._library.next_model()}'.",
            "Add that model in the Models panel to get the same image back."))
        return []

    def _image_model(self, model: str, recorded: str) -> tuple[Any | None, str]:
        """(the library entry to restore for an image made with the model ``model`` whose weights hashed to
        ``recorded`` (its "Model hash"; "" when none is recorded), a note when it is not the file the image was made
        with). A name alone picked another file the library gives that name now (one removed and another added
        under its name; an image made from a path, named by the file's stem). Only hashes known without reading
        the files are compared (``known_model_hash``: models this session loaded): hashing gigabytes here would
        freeze the window. The entry of that name when its hash is the image's, or not known and no other's is;
        else the usable entry whose known hash is the image's; else the entry of that name, said to be another
        file."""
        entry = self._library.entry(model)
        if not recorded:
            return entry, ""
        openable = [e for e in self._library.entries if usable(e)]
        hashes = {e.name: known_model_hash(e.path, self._confirmed) for e in openable}  # "" when not known
        same = [e for e in openable if hashes[e.name].lower() == recorded.lower()]
        if any(e is entry for e in same):
            return entry, ""
        if same:
            return same[0], (f"the model: the image's '{model}' is '{same[0].name}' here (the file with its model "
                             f"hash, {recorded}), which is selected")  # fmt: skip
        if entry is not None and hashes.get(entry.name):
            return entry, (f"the model: '{entry.name}' here is not the file the image was made with (its model hash "
                           f"is {hashes[entry.name]}, the image's {recorded}): new images may differ")  # fmt: skip
        return entry, ""

    def _restore_refs(self, refs: list[Any]) -> None:
        """The LoRA panel as an image of another program names its LoRAs (``LoraHashSearch.restore_refs``): each value
        not restored as saved is said once the rows' files are read, and one notice names all those not in the panel
        once that is known (after the search of the files' contents, when one runs)."""
        self._loras.restore_refs(refs, lambda notices: self._say_loras_not_found([], notices),
                                 self._say_loras_not_found)  # fmt: skip

    def _say_loras_not_used(self, notices: list[str]) -> None:
        """``LoraHashSearch.restore_used``'s ``told``: each LoRA of one of our images not restored as saved (not
        here, not added, unusable now) said, once its files were read."""
        for text in notices:
            self._say(EngineError("notice", text, "Add the LoRA file again in the LoRA panel."))

    def _say_loras_not_found(self, missing: list[str], notices: list[str]) -> None:
        """``LoraHashSearch.restore_refs``'s and ``restore_used``'s settled: the LoRAs of the dropped image that are not
        in the panel, and what was not restored as saved among those found by their content."""
        if missing:
            one = len(missing) == 1
            self._say(EngineError(
                "notice", f"The image used {counted(len(missing), 'LoRA')} not in the LoRA panel "
                f"({named_few([repr(name) for name in missing], 5)}); new images are made without "
                f"{'it' if one else 'them'}.", f"Add the LoRA file{'' if one else 's'} in the LoRA panel (found by "
                "file name or content), then drop the image again."))  # fmt: skip
        for text in notices:
            self._say(EngineError("notice", text, "Check the LoRA panel before you generate."))


def _valid_texts(settings: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``settings`` with each lone surrogate in its prompts (JSON's "\\ud83d", half an emoji, which other programs
    write) made U+FFFD, as the gallery stores them (``app.valid_text.storable``), and a note for each prompt that
    held one. Kept, the prompt box dropped the character unsaid, the token counter raised, and the job failed."""
    notes = []
    for key, name in (("prompt", "prompt"), ("negative_prompt", "negative prompt")):
        text = settings.get(key)
        if isinstance(text, str) and (valid := storable(text)) != text:
            settings = {**settings, key: valid}
            notes.append(f"its {name} held characters that are not valid text (halves of an emoji, as some "
                         "programs write them); each is shown as \ufffd")  # fmt: skip
    return settings, notes
