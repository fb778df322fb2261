"""Per-model LoRA state: which LoRA files at which strengths are applied right now.

``LoraManager.set([(path, strength), (path, strength, text_strength), ...])`` makes the model (and, for files
with a CLIP or T5 part, the pipeline's text encoders) carry exactly that set: it reads and checks every file and
every target against the models first (an error leaves the model as it was), then restores the
originals and applies the new set. ``text_strength`` is the strength of a file's CLIP/T5 parts (ComfyUI's
``strength_clip``, A1111's ``te=``), ``strength`` the transformer's; left out or None, it is ``strength``.
Asking for the set already applied does nothing, so the engine can call it before every image. Strength 0 means
"not applied" (bit-exact no-op), for one part or both. Files are re-read when they change on disk (size/mtime).
The same LoRA twice in one set (one path twice, or files of the same weights: a copy, or one whose metadata alone
was edited, ``LoraFile.same_change``) is refused: it would count double."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from gpu.lora.apply import apply_deltas, model_layers, plan, restore
from gpu.lora.fit import ModelLayers, applied_parts, file_parts, known_misfit, layout_targets, misfit
from gpu.lora.formats import LoraError, LoraFile, check_lora_file, read_lora, unreadable_lora
from gpu.lora.keys import LoraLayout, has_text_part
from gpu.lora.metadata import MAX_STRENGTH, LoraRequest, file_stamp
from gpu.lora.refs import hashes_name
from gpu.lora.twins import same_lora_words

_ATTR = "_nibble_lora_manager"
_ENCODER_SET_ATTR = "_nibble_lora_set"  # on a text encoder: the LoRAs on it (``encoder_loras``)

_USAGE = "FILE, FILE:STRENGTH or FILE:STRENGTH:TEXT_STRENGTH"
_VALUE_NAMES = ("strength", "text strength")


@dataclass(frozen=True)
class ActiveLora:
    """One applied LoRA: ``strength`` on its transformer part, ``text_strength`` on its CLIP/T5 parts (equal to
    ``strength`` for a file without such parts)."""

    file: LoraFile
    strength: float
    text_strength: float

    @property
    def changes(self) -> list[str]:
        """The pipeline components this LoRA changes as applied: a part at strength 0 changes nothing."""
        applied = applied_parts(self.strength, self.text_strength)
        return [c for c in self.file.components if c in applied]

    def describe(self) -> dict:
        """Its entry of the PNG's ``lora_list``; ``text_strength`` only where it differs from ``strength`` (an
        entry without it means the same, as every image made before it existed)."""
        f = self.file
        apart = {"text_strength": self.text_strength} if self.text_strength != self.strength else {}
        return {
            "name": f.name,
            "file": f.path.name,  # the name only: a PNG is shared, and a full path names the user's folders
            "strength": self.strength,
            **apart,
            "hash": f.short_hash,
            "format": f.format,
            "rank": f.rank,
            "changes": self.changes,
            "trigger_words": list(f.trigger_words),
        }


def _value_colon(text: str) -> int | None:
    """Where the last colon of ``text`` could end a file name before a value: None when there is none, or when
    it is a Windows drive's ("C:")."""
    cut = text.rfind(":")
    head = text[:cut]
    return cut if cut > 0 and not (len(head) == 1 and head.isalpha()) else None


def split_lora_arg(text: str) -> tuple[str, float] | tuple[str, float, float]:
    """``FILE[:STRENGTH[:TEXT_STRENGTH]]`` (CLI) -> (path, strength) or (path, strength, text strength); a Windows
    drive colon is not a separator, nor a colon of the file's own name. A path may begin with "~" (no shell expands
    it in ``--lora=~/…``). Numbers after colons are values, unless the file named without them does not exist and
    one named with them (or some of them) does: a file's own name may be "style:0.8"."""
    if not text.strip():
        raise LoraError(f"--lora needs a file name ({_USAGE})")
    readings: list[tuple[str, list[float]]] = [(text, [])]  # the whole text a file, then with values split off
    path, values = text, []
    while len(values) < 2 and (cut := _value_colon(path)) is not None:
        try:
            values = [float(path[cut + 1 :]), *values]
        except ValueError:
            break
        path = path[:cut]
        readings.append((path, values))
    # The most values split off that leave a file that exists; with none such, all of them (said below).
    path, values = next((r for r in reversed(readings) if Path(r[0]).expanduser().exists()), readings[-1])
    if not Path(path).expanduser().exists():  # "~" as the reader of the file takes it
        _check_values(text)
    return (path, *values) if values else (path, 1.0)  # type: ignore[return-value]


def _check_values(text: str) -> None:
    """``--lora`` text that names no file as it was split: when it begins with a file's name, what follows it is
    meant as values: ``LoraError`` naming the one that is no number, or saying there are too many."""
    head = text
    while (cut := _value_colon(head)) is not None:
        head = head[:cut]
        if not Path(head).expanduser().is_file():
            continue
        values = text[cut + 1 :].split(":")
        if len(values) > len(_VALUE_NAMES):
            raise LoraError(f"--lora {text}: {len(values)} values follow the file name, at most 2 can",
                            hint=f"write {_USAGE}, e.g. {Path(head).name}:0.8:0.5")  # fmt: skip
        for name, value in zip(_VALUE_NAMES, values, strict=False):
            try:
                float(value)
            except ValueError:
                hint = f"give a number from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}, e.g. 0.8"
                raise LoraError(f"--lora {text}: {name} {value!r} is not a number", hint=hint) from None
        return


def parse_lora_arg(text: str) -> tuple[str, float] | tuple[str, float, float]:
    """``FILE[:STRENGTH[:TEXT_STRENGTH]]`` (CLI) -> (path, strength[, text strength]), checked as far as it can be
    without the model (the strengths' range; the file from its header: there, readable, a FLUX.1 LoRA), so that a
    mistake is said before the model loads, not seconds later. A text strength is kept as given: the manager
    applies it where the file has a CLIP or T5 part (``LoraManager._wanted``)."""
    parsed = split_lora_arg(text)
    for name, value in zip(_VALUE_NAMES, parsed[1:], strict=False):
        check_strength(value, f"--lora {text}", name)
    check_lora_file(parsed[0])
    return parsed


def parse_lora_args(texts: list[str]) -> list[tuple[str, float] | tuple[str, float, float]]:
    """The CLI's ``--lora`` values -> [(path, strength[, text strength])], each checked by ``parse_lora_arg``, and
    one file given twice refused here too (the manager refuses it, but only once the model has loaded; copies
    under other names, identical or with only their metadata edited, are still found there, from their contents)."""
    loras = [parse_lora_arg(text) for text in texts]
    seen: dict[Path, Path] = {}
    for lora in loras:
        path, strength, text_strength = _request(lora)
        if strength == 0.0 and text_strength in (None, 0.0):  # skipped when applied, as the manager does
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise _asked_twice(seen[key], Path(path))
        seen[key] = Path(path)
    return loras


def check_fit_before_load(loras: list[LoraRequest] | None, layers: ModelLayers) -> None:
    """``LoraError`` for the first of ``loras`` that the model whose files' headers give ``layers``
    (``gpu.lora.layer_files``) cannot take, from each file's header (``known_misfit``), or that is gone, damaged or no
    FLUX.1 LoRA, at any strength, as applying says: a job asks it before loading the model, so either is said at
    once, not after the minute a FLUX.1 load takes. The loaded model judges the parts not known."""
    for lora in loras or []:
        path, strength, text_strength = _request(lora)
        found, layout, parts = asked_parts(path, strength, text_strength)
        wrong = known_misfit(found.name, layout_targets(layout), layers, strength, text_strength) if parts else None
        if wrong is not None:
            raise wrong.error()


def asked_parts(path: str | Path, strength: float, text_strength: float | None
                ) -> tuple[Path, LoraLayout, frozenset[str]]:  # fmt: skip
    """(the path, its layout, the pipeline components it changes) of the LoRA file at ``path`` asked at ``strength``
    and ``text_strength``, from its header (``check_lora_file``: ``LoraError`` for a file gone, damaged or no FLUX.1
    LoRA, whatever the strengths): ``applied_parts``, less the text encoders where the file has no CLIP/T5 part, whose
    text strength then changes nothing (at strength 0 with a text strength of 1 it was read whole, to be skipped)."""
    found, layout = check_lora_file(path)
    return found, layout, file_parts(strength, text_strength, has_text_part(layout.components.values()))


def _request(lora: LoraRequest) -> tuple[str | Path, float, float | None]:
    """(path, strength, text strength or None) of one requested LoRA, whichever form it was given in."""
    path, strength, *rest = lora
    return path, strength, rest[0] if rest else None


def _asked_twice(first: Path, second: Path, identical: bool = True, renamed: bool = False) -> LoraError:
    """The error for one LoRA asked for twice: one file (``first`` and ``second`` the same path), or two files of
    the same weights, ``identical``, under ``renamed`` keys or with other metadata (``LoraFile.same_change``), each
    named by its name, or
    by its path where both have one name (loras/a/style.safetensors and loras/b/style.safetensors: "style.safetensors
    and style.safetensors are the same LoRA" named neither)."""
    same = f"{second} is asked for twice"
    if first.resolve() != second.resolve():
        named = (first.name, second.name) if first.name != second.name else (first, second)
        same = f"{named[0]} and {named[1]} are the same LoRA ({same_lora_words(identical, renamed)})"
    return LoraError(same, hint=f"use it once, at the strength you want (-{MAX_STRENGTH:g} to {MAX_STRENGTH:g})")


def check_strength(strength: float, name: str = "LoRA", what: str = "strength") -> float:
    """``strength`` as a float, if the engine applies it (finite, within ±``MAX_STRENGTH``); else ``LoraError``.
    ``what``: which one it is, as the message names it ("text strength")."""
    strength = float(strength)
    if not math.isfinite(strength) or abs(strength) > MAX_STRENGTH:
        raise LoraError(f"{name}: {what} {strength:g} is not possible",
                        hint=f"use a {what} from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}")  # fmt: skip
    return strength


class LoraManager:
    """The LoRAs on one transformer and, for files with a CLIP or T5 part, on its pipeline's text encoders."""

    def __init__(self, model: nn.Module, encoders: dict[str, nn.Module | None] | None = None) -> None:
        self.model = model
        self.encoders: dict[str, nn.Module] = {n: m for n, m in (encoders or {}).items() if m is not None}
        self.active: list[ActiveLora] = []
        self._key: tuple = ()
        # Files read, by resolved path, kept while they are in the active set or the one being asked for: a file is
        # tens to hundreds of MB as float32, and every file tried in a session was kept until the app quit.
        self._files: dict[str, tuple[tuple[int, int], LoraFile]] = {}
        self._asked: list[LoraFile] = []  # the files of the set asked for last (``_wanted``)

    def use_encoders(self, encoders: dict[str, nn.Module | None]) -> None:
        """The text encoders LoRAs' CLIP/T5 parts go to; other ones than before first get their originals back."""
        encoders = {n: m for n, m in encoders.items() if m is not None}
        if {n: id(m) for n, m in encoders.items()} != {n: id(m) for n, m in self.encoders.items()}:
            self.clear()
            self.encoders = encoders

    def read(self, path: str | Path, parts: Collection[str] = ()) -> LoraFile:
        """The file at ``path``, read (or as read before, while its size and time stay the same). A file whose
        ``parts`` (the pipeline components it is to change, ``applied_parts``) do not fit the model is refused
        from its header (``gpu.lora.fit``), before any of its tensors is read: a LoRA for another FLUX size, of
        hundreds of MB, was read whole and converted to float32 first, only for ``plan`` to refuse it."""
        p = Path(path).expanduser()
        try:
            stamp = file_stamp(p)
        except OSError as err:
            check_lora_file(p)  # says what is wrong: gone, a folder, unreadable
            raise unreadable_lora(p, err) from err  # it is there again (a race): still no stat to go by
        cached = self._files.get(str(p.resolve()))
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_lora(p, lambda label, layout: self._check_fit(label, layout, parts)))
            self._files[str(p.resolve())] = cached
        return cached[1]

    def _check_fit(self, label: str, layout: LoraLayout, parts: Collection[str]) -> None:
        """``LoraError`` when the file ``label`` of ``layout`` does not fit this manager's model and encoders."""
        layers = model_layers({"transformer": self.model, **self.encoders})
        wrong = misfit(label, layout_targets(layout), layers, parts)
        if wrong is not None:
            raise wrong.error()

    def _wanted(self, loras: list[LoraRequest] | None) -> tuple[list[ActiveLora], tuple]:
        """The LoRAs to apply (files read and checked; those at strength 0 in every part skipped, their headers
        checked but their tensors not read: a 300 MB file switched to 0 was read whole at every job) and the key of
        that set. A file without a CLIP or T5 part gets its strength as text strength: what it is asked for there
        changes nothing, so neither the key nor the PNG's list names it. The one place that decides it (the app's
        panel and ``--lora`` send what they were given): only here is the file read as it is when applied."""
        wanted: list[ActiveLora] = []
        asked: list[LoraFile] = []
        for lora in loras or []:
            path, strength, text_strength = _request(lora)
            parts = asked_parts(path, strength, text_strength)[2]
            if not parts:  # changes nothing: its tensors not read
                read_before = self._files.get(str(Path(path).expanduser().resolve()))
                if read_before is not None:  # kept for its strength to come back (``read`` checks it is the same)
                    asked.append(read_before[1])
                continue
            f = self.read(path, parts)
            asked.append(f)
            s = check_strength(strength, f.path.name)
            ts = s if text_strength is None else check_strength(text_strength, f.path.name, "text strength")
            if not has_text_part(f.components):
                ts = s
            if s == 0.0 and ts == 0.0:
                continue
            twin = next((a.file for a in wanted if a.file.same_change(f)), None)
            if twin is not None:  # applied twice, it would count double (and be listed twice in the PNG)
                raise _asked_twice(twin.path, f.path, twin.sha256 == f.sha256, twin.keys != f.keys)
            wanted.append(ActiveLora(f, s, ts))
        self._asked = asked
        self._keep_only(asked + [a.file for a in self.active])
        return wanted, tuple((str(a.file.path), a.file.sha256, a.strength, a.text_strength) for a in wanted)

    def _keep_only(self, files: list[LoraFile]) -> None:
        """Forget the files read but not in ``files`` (the set asked for, at strength 0 too, and the one applied:
        the engine asks before every image); one asked for again later is read again."""
        keep = {str(f.path.resolve()) for f in files}  # as ``read`` keys them: a file's path keeps its link's name
        for path in [p for p in self._files if p not in keep]:
            del self._files[path]

    def is_applied(self, loras: list[LoraRequest] | None) -> bool:
        """Whether the model carries exactly these LoRAs already (so ``set`` would change nothing). Reads the
        files: a missing or broken one raises ``LoraError`` here."""
        return self._wanted(loras)[1] == self._key

    def set(self, loras: list[LoraRequest] | None) -> list[ActiveLora]:
        """Apply exactly these LoRAs (parts at strength 0 are skipped); returns the applied list."""
        wanted, key = self._wanted(loras)
        if key == self._key:
            return self.active
        models = {"transformer": self.model, **self.encoders}
        deltas = plan(models, [(a.file, a.strength, a.text_strength) for a in wanted])  # raises before anything changes
        self.clear()
        try:
            apply_deltas(deltas)
        except BaseException:  # e.g. out of memory half-way: no half-applied set, the model goes back to no LoRAs
            self.clear()
            raise
        self.active, self._key = wanted, key
        self._keep_only(self._asked)  # the set applied before is off the model: its files go too
        for name, encoder in self.encoders.items():
            on = tuple((a.file.sha256, a.text_strength) for a in wanted if name in a.changes)
            encoder.__dict__[_ENCODER_SET_ATTR] = on
        return self.active

    def clear(self) -> None:
        for module in (self.model, *self.encoders.values()):
            restore(module)
        for encoder in self.encoders.values():
            encoder.__dict__.pop(_ENCODER_SET_ATTR, None)
        self.active, self._key = [], ()


def encoder_loras(encoder: nn.Module) -> tuple:
    """The LoRAs on a text encoder now, as (file SHA-256, text strength) pairs (``()``: none): what an encoding made
    with it depends on, beside the prompt (``gpu.generation.memory`` keys its prompt cache on it)."""
    return encoder.__dict__.get(_ENCODER_SET_ATTR, ())


def manager_for(model: nn.Module, encoders: dict[str, nn.Module | None] | None = None) -> LoraManager:
    """The model's LoRA manager (created on first use, lives as long as the model). ``encoders``: the pipeline's
    text encoders by component name (``text_encoder``, ``text_encoder_2``), which LoRAs' CLIP/T5 parts change;
    without them a file with such a part is refused."""
    manager = model.__dict__.get(_ATTR)
    if manager is None:
        manager = LoraManager(model)
        model.__dict__[_ATTR] = manager
    if encoders is not None:
        manager.use_encoders(encoders)
    return manager


def lora_hashes(active: list[ActiveLora]) -> str:
    """A1111's ``Lora hashes`` value: ``name: hash, name2: hash2``, each hash the AutoV3 one A1111/Forge and Civitai
    give (the first 12 hex digits of the SHA-256 of the file's tensor data). ':' and ',' are taken out of the
    names, as A1111 does (``hashes_name``): they split the value, and a reader found LoRAs there that were never
    used."""
    return ", ".join(f"{hashes_name(a.file.name)}: {a.file.autov3}" for a in active)
