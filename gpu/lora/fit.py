"""Whether a LoRA fits a model, from shapes alone: the one rule that decides it (torch-free).

A target of a LoRA file (one module of it: A [r, K], B [N, r]) fits when every model layer it names is there, the
layers take K inputs, and their outputs add up to N (a fused BFL ``qkv``'s rows split over q, k and v). Only the
pipeline parts applied at the LoRA's strengths are judged (``applied_parts``): a part at strength 0 changes nothing.

Three callers, one rule: ``gpu.lora.apply.plan`` judges the model it is about to change; ``LoraManager`` judges a
file's header against its model before any tensor is read (a 300 MB LoRA for another FLUX size is refused in
milliseconds, not read whole first); the app's LoRA panel judges each listed file's header against the selected
model's layers as its files' headers describe them (``gpu.lora.layer_files``, ``ModelInfo.lora_layers``), so a LoRA
for another model is shown in its row as soon as it is listed, not found at Generate."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from gpu.lora.keys import TEXT_ENCODERS, LoraError, LoraLayout


class TargetShape(NamedTuple):
    """One target of a LoRA file as far as fitting goes: ``key`` its module's name in the file (for messages), the
    pipeline ``component`` it changes, the ``modules`` it names there (B's rows split over them, in order; a text
    encoder's layer as the file names it), A's ``inputs`` (K) and B's ``outputs`` (N)."""

    key: str
    component: str
    modules: tuple[str, ...]
    inputs: int
    outputs: int


class Layer(NamedTuple):
    """A linear of a model a LoRA may change: its module path in its component, (``inputs``, ``outputs``)."""

    path: str
    inputs: int
    outputs: int


# component ("transformer", a ``TEXT_ENCODERS`` name) -> every name a LoRA file may give a linear (``layer_names``)
# -> that linear. A component left out is one the model has not (the engine) or whose layers are not known (the app).
ModelLayers = Mapping[str, Mapping[str, Layer]]


# Each target read, kept once: a layer of one model size is the same target (key, modules, widths: not the rank) in
# every file of one format, and the LoRA panel keeps every listed file's. Each file's own took 120 KiB for 228
# targets: 2,000 LoRAs listed held hundreds of MB.
_KNOWN: dict[TargetShape, TargetShape] = {}
# Each file's targets, kept once too: the files of one layout (a trainer's LoRAs for one model, whatever their rank)
# share one tuple, by which a model's verdict on all of them is reached once (``ModelFit``).
_LAYOUTS: dict[tuple[TargetShape, ...], tuple[TargetShape, ...]] = {}


def layout_targets(layout: LoraLayout) -> tuple[TargetShape, ...]:
    """The targets of a file as its header gives them (``check_layout``), in the file's order: the one tuple of
    every file of that layout."""
    shapes = (TargetShape(base, layout.components[base], modules, *layout.shapes[base])
              for base, (modules, _) in layout.modules.items())  # fmt: skip
    targets = tuple(_KNOWN.setdefault(t, t) for t in shapes)  # setdefault: one step, whatever thread reads a header
    return _LAYOUTS.setdefault(targets, targets)


def layer_names(component: str, path: str) -> Iterator[str]:
    """Every name a LoRA file may give the linear at ``path`` of ``component``: the transformer's by its diffusers
    path; a text encoder's with and without CLIP's leading ``text_model.`` (transformers 4 nests CLIPTextModel's
    modules under it, 5 does not, and files are saved under either), each also as kohya writes it, "_" for "."."""
    if component == "transformer":
        yield path
        return
    short = path.removeprefix("text_model.")
    for name in (short, "text_model." + short):
        yield name
        yield name.replace(".", "_")


def index_layers(component: str, linears: Iterable[Layer]) -> dict[str, Layer]:
    """``linears`` of ``component`` by every name a file may give them (``layer_names``)."""
    return {name: layer for layer in linears for name in layer_names(component, layer.path)}


def applied_parts(strength: float, text_strength: float | None) -> frozenset[str]:
    """The pipeline components a LoRA changes at ``strength`` (its transformer's) and ``text_strength`` (its CLIP/T5
    parts'; None: the same): a part at strength 0 is left out, its layers keep their originals."""
    text = strength if text_strength is None else text_strength
    return frozenset((["transformer"] if strength else []) + (list(TEXT_ENCODERS) if text else []))


def file_parts(strength: float, text_strength: float | None, text_part: bool) -> frozenset[str]:
    """``applied_parts`` of a file, less the text encoders where it has no CLIP/T5 part (``text_part`` False): its
    text strength then changes nothing. Empty: the file changes nothing at these strengths, and is not applied."""
    parts = applied_parts(strength, text_strength)
    return parts if text_part else parts.difference(TEXT_ENCODERS)


def known_misfit(label: str, targets: Iterable[TargetShape], layers: ModelLayers, strength: float,
                 text_strength: float | None) -> Misfit | None:  # fmt: skip
    """``misfit`` at a LoRA's strengths (``applied_parts``), judging only the parts whose layers ``layers`` gives:
    what the files' headers tell before the model is loaded (the app's rows, a job's check before it loads the
    model; ``gpu.lora.layer_files`` leaves out a part it cannot read), the loaded model judging the rest."""
    return misfit(label, targets, layers, applied_parts(strength, text_strength) & layers.keys())


class ModelFit:
    """``known_misfit``'s words (``Misfit.text``) for the model of ``layers``, reached once per layout (the targets'
    tuple, ``layout_targets``) and set of parts judged: the LoRA panel judges every listed file at each model picked,
    and judged file by file, 0.15 ms each that does not fit, 2,000 LoRAs froze the window for 0.3 s. The words
    never name the file (``Misfit.text``), so a layout's are every file's of it."""

    def __init__(self, layers: ModelLayers) -> None:
        self.layers = layers
        self._known = frozenset(layers)  # the components whose layers are known (``known_misfit``)
        # (id of the targets' tuple, parts judged) -> (that tuple, held so that its id is no other's meanwhile; words)
        self._said: dict[tuple[int, frozenset[str]], tuple[tuple[TargetShape, ...], str]] = {}

    def misfit_text(self, targets: tuple[TargetShape, ...], strength: float, text_strength: float | None) -> str:
        """``known_misfit(…).text`` of a file of ``targets`` at its strengths against this model; "" when it fits."""
        parts = applied_parts(strength, text_strength) & self._known
        key = (id(targets), parts)
        said = self._said.get(key)
        if said is None:
            wrong = misfit("", targets, self.layers, parts)
            said = self._said[key] = (targets, "" if wrong is None else wrong.text)
        return said[1]


@dataclass(frozen=True)
class Misfit:
    """Why a LoRA does not fit a model. ``text``: in words without the file's name (a LoRA row's line), beginning
    with what the LoRA was made for where the shapes say it; ``message``: with the file's name, as the engine refuses
    it; ``hint``: what to do."""

    text: str
    message: str
    hint: str

    def error(self) -> LoraError:
        return LoraError(self.message, hint=self.hint)


_OTHER_SIZE = "use the LoRA with the model it was made for, or a LoRA made for this model"


def misfit(label: str, targets: Iterable[TargetShape], layers: ModelLayers, parts: Collection[str]) -> Misfit | None:
    """Why the LoRA file ``label`` (its ``targets``) does not fit a model of ``layers``, None when it does. Only the
    targets of ``parts`` are judged (``applied_parts``; the app leaves out the components whose layers it does not
    know); one of a part the model has not is refused. A layer of other widths is named before a missing layer
    (it says what the LoRA was made for), the first in the file's order, with how many more do not fit."""
    first: tuple[int, TargetShape] | None = None  # (kind, target) of the target named: the first of the first kind
    misfits = judged = 0
    for t in targets:
        if t.component not in parts:
            continue
        judged += 1
        component = layers.get(t.component)
        if component is not None and _fits(t, component):  # the common case, quick: the app judges every row
            continue
        kind = _misfit_kind(t, component)
        misfits += 1
        if first is None or kind < first[0]:
            first = (kind, t)
    if first is None:
        return None
    # Words for the one target named only: made for each of 228 targets, they took 0.5 ms a file, a second for the
    # rows of 2,000 LoRAs at each model picked.
    said = _target_misfit(label, first[1], layers.get(first[1].component))
    if misfits == 1:
        return said
    more = f"; {misfits - 1} more of its {judged} layers do not fit either"
    return Misfit(said.text + more, said.message + more, said.hint)


def _fits(t: TargetShape, layers: Mapping[str, Layer]) -> bool:
    """Whether target ``t`` fits the linears ``layers`` of its component (``_target_misfit`` says why not)."""
    outputs = 0
    for name in t.modules:
        layer = layers.get(name)
        if layer is None or layer.inputs != t.inputs:
            return False
        outputs += layer.outputs
    return outputs == t.outputs


# Kinds of misfit, in the order one is named: other widths say what the LoRA was made for.
_WIDTHS, _MISSING, _NO_PART = range(3)


def _misfit_kind(t: TargetShape, layers: Mapping[str, Layer] | None) -> int:
    """Why target ``t``, which does not fit (``_fits``), does not fit the linears ``layers`` of its component (None:
    the model has not that component): ``_NO_PART``, ``_MISSING`` (a layer it names is not there) or ``_WIDTHS``."""
    if layers is None:
        return _NO_PART
    return _MISSING if any(name not in layers for name in t.modules) else _WIDTHS


def _target_misfit(label: str, t: TargetShape, layers: Mapping[str, Layer] | None) -> Misfit:
    """Why target ``t``, which does not fit (``_fits``), does not fit the linears ``layers`` of its component (None:
    the model has not that component), in words: a width with the model's layer path, a missing layer with the name
    the file gives it."""
    encoder = TEXT_ENCODERS.get(t.component)
    kind = _misfit_kind(t, layers)
    if kind == _NO_PART:
        said = f"also changes the {encoder}, which this model has not ({t.key})"
        return Misfit(f"it {said}", f"{label} {said}", "use the LoRA with a FLUX.1 model that has both text encoders")
    assert layers is not None
    if kind == _MISSING:
        missing = next(name for name in t.modules if name not in layers)
        where = "this model" if encoder is None else f"the model's {encoder}"
        detail = f"{t.key} targets {missing}, which {where} does not have"
        made = "made for a FLUX model with more blocks" if encoder is None else f"made for another {encoder}"
        return Misfit(f"{made} ({detail})", f"{label}: {detail}", f"the LoRA was {made}")
    made = "made for a model" if encoder is None else f"its {encoder} part is made for one"
    present = [layers[name] for name in t.modules]
    wrong = next((layer for layer in present if layer.inputs != t.inputs), None)
    if wrong is not None:
        lora, model = t.inputs, wrong.inputs
        detail = f"{t.key} expects {lora} inputs but {wrong.path} has {model}"
    else:
        lora, model = t.outputs, sum(layer.outputs for layer in present)
        detail = (f"{t.key} has {lora} outputs but {' + '.join(layer.path for layer in present)} have "
                  f"{' + '.join(str(layer.outputs) for layer in present)}")  # fmt: skip
    text = f"{made} with {lora}-wide layers; this model's are {model} wide ({detail})"
    return Misfit(text, f"{label}: {text}", _OTHER_SIZE)
