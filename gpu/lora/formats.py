"""Reading FLUX.1 LoRA ``.safetensors`` files in the formats people share, into one canonical form.

Formats (detected from the key names, never from the file name):

* ``diffusers`` (PEFT / diffusers ``save_lora_weights``): ``transformer.<module>.lora_A.weight`` /
  ``lora_B.weight`` over diffusers module names (q, k, v split); also raw PEFT ``base_model.model.<module>``
  and kohya-style underscored diffusers names (``lora_transformer_single_transformer_blocks_0_attn_to_q``);
  a PEFT state dict saved with its one adapter's name (``lora_A.default.weight``) is read without the name.
  Alpha: a ``.alpha`` tensor when present, else ``transformer_lora_adapter_metadata`` (lora_alpha over the rank;
  over its square root where it says ``use_rslora``: ``gpu.lora.peft_config``) in the header, else alpha = rank.
  An alpha of 0 is alpha = rank, as kohya's trainer reads it; NaN/inf is refused.
* ``kohya`` (sd-scripts, ai-toolkit's ComfyUI export): ``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight``
  / ``lora_up.weight`` / ``alpha`` over BFL module names with ``_`` for ``.``; q, k, v fused.
* ``bfl`` (BFL / ComfyUI): ``diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`` / ``lora_B.weight``
  (or ``lora_down``/``lora_up``, optional ``alpha``); q, k, v fused.
* ``xlabs`` (XLabs-AI's x-flux attention-processor LoRAs, over BFL's blocks):
  ``double_blocks.0.processor.qkv_lora1.down.weight`` / ``up.weight`` (``…lora1`` the image stream's
  ``img_attn.qkv`` / ``proj``, ``…lora2`` the text stream's), ``single_blocks.0.processor.qkv_lora``
  (``linear1``'s q, k, v rows) and ``proj_lora`` (``linear2``); they have no alpha: scale 1, as x-flux and
  diffusers apply them. (Beside BFL's own names in one file, the file is ``bfl``, as it always was.)

Text-encoder parts beside the transformer's (kohya ``lora_te1_``/``lora_te2_``/``lora_te3_``, diffusers
``text_encoder.``/``text_encoder_2.``) become targets of the CLIP or T5 encoder (``LoraTarget.component``).

Every file becomes a list of ``LoraTarget``: the diffusers module(s) it changes, ``down`` A [r, K],
``up`` B [N, r] and ``scale`` = alpha / r. A fused BFL target (``img_attn.qkv``, single blocks' ``linear1``)
names several diffusers modules whose outputs are B's rows in order; the split sizes are taken from the model
when the LoRA is applied. Files for another architecture, with keys this reader does not understand, with
inconsistent shapes or integer factors are refused from the header alone (``check_lora_file``, ``gpu.lora.keys``),
NaN/inf values once read, with a ``LoraError`` naming the keys: nothing is silently skipped.
"""

from __future__ import annotations

import math
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from gpu.checkpoint.format import TORCH_DTYPES
from gpu.errors import CheckpointError
from gpu.lora.fit import TargetShape
from gpu.lora.keys import FORMATS, TEXT_ENCODERS, LoraError, LoraLayout, check_layout, map_module, parts_text  # noqa: F401
from gpu.lora.metadata import read_opened, trigger_words_from
from gpu.lora.peft_config import metadata_scale
from gpu.lora.twins import key_names
from gpu.paths import named_path
from gpu.safetensors_header import open_safetensors


@dataclass
class LoraTarget:
    key: str  # the module's name in the file (for messages)
    modules: tuple[str, ...]  # diffusers module names; several = B's rows split over them, in order
    down: torch.Tensor  # A: float32 [r, K]
    up: torch.Tensor  # B: float32 [N, r]
    scale: float  # alpha / r
    swap_halves: bool = False  # BFL final_layer.adaLN_modulation (shift, scale) -> diffusers norm_out (scale, shift)
    component: str = "transformer"  # the pipeline component it changes ("text_encoder", "text_encoder_2" too)

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def shape(self) -> TargetShape:
        """What fitting it to a model goes by (``gpu.lora.fit``): as its file's header gave it."""
        return TargetShape(self.key, self.component, self.modules, int(self.down.shape[1]), int(self.up.shape[0]))


@dataclass
class LoraFile:
    path: Path
    name: str  # file stem, as A1111 names LoRAs
    format: str  # one of FORMATS
    targets: list[LoraTarget]
    sha256: str  # of the whole file (``short_hash``); files that differ in it may be the same LoRA (``same_change``)
    data_sha256: str = ""  # of its tensor data after the header: the AutoV3 / "addnet" hash (``autov3``)
    metadata: dict[str, str] = field(default_factory=dict)
    trigger_words: list[str] = field(default_factory=list)
    keys: str = ""  # the SHA-256 of its tensors' keys as written (``key_names``): a copy renamed them, or not

    @property
    def short_hash(self) -> str:
        """First 12 hex digits of the file's SHA-256 (the ``hash`` of our ``lora_list``)."""
        return self.sha256[:12]

    @property
    def autov3(self) -> str:
        """First 12 hex digits of the SHA-256 of the tensor data after the header: what A1111/Forge write under
        ``Lora hashes`` and Civitai calls AutoV3 (it stays when only the metadata is edited)."""
        return self.data_sha256[:12]

    @property
    def rank(self) -> int:
        return max((t.rank for t in self.targets), default=0)

    def same_change(self, other: LoraFile) -> bool:
        """Whether ``other`` changes the model as this file does at one strength, so that applying both counts it
        twice: the same tensor data (``data_sha256``: a copy, or one whose metadata alone was edited, its trigger
        words or title, is the same LoRA) read into the same targets (layers, scales: a diffusers/PEFT file's alpha
        may be in its metadata, and the same data with another ``lora_alpha`` is another LoRA). The tensors of two
        files are compared only when their data hashes are the same. The app's panel says it before a job from the
        files alone (``gpu.lora.twins``), by its keys' layers as this reads them (a copy under renamed keys too)."""
        if self.sha256 == other.sha256:
            return True
        if self.data_sha256 != other.data_sha256 or len(self.targets) != len(other.targets):
            return False
        theirs = {(t.component, t.modules): t for t in other.targets}
        for mine in self.targets:
            twin = theirs.get((mine.component, mine.modules))
            if twin is None or (mine.scale, mine.swap_halves) != (twin.scale, twin.swap_halves):
                return False
            if not (torch.equal(mine.down, twin.down) and torch.equal(mine.up, twin.up)):
                return False
        return True

    @property
    def components(self) -> list[str]:
        """The pipeline components the file changes, in the pipeline's order."""
        present = {t.component for t in self.targets}
        return [c for c in ("transformer", *TEXT_ENCODERS) if c in present]

    @property
    def parts(self) -> str:
        """What the file changes, in words ("transformer + CLIP text encoder")."""
        return parts_text(self.components)


def unreadable_lora(path: Path, err: OSError) -> LoraError:
    """The error for a LoRA file the system will not let us look at (``err``), naming the file."""
    return LoraError(f"LoRA file {path} cannot be read ({err.strerror or err})",
                     hint="check that you may read the file and its folders, then try again")  # fmt: skip


def check_lora_file(path: str | Path) -> tuple[Path, LoraLayout]:
    """(the path, its layout) of a LoRA file, from its header alone (milliseconds, whatever the file's size):
    raises ``LoraError`` for a missing or unreadable file, a folder, a pickle, a damaged file, or keys that are no
    FLUX.1 LoRA this app applies. The command line checks its ``--lora`` files with this before it loads the model."""
    with _open_lora(path) as (path, _, _, layout):
        return path, layout


@contextmanager
def _open_lora(path: str | Path) -> Iterator[tuple[Path, BinaryIO, dict[str, Any], LoraLayout]]:
    """(the path, the file open at its data section, its checked header, its layout) of a LoRA file, as
    ``check_lora_file`` checks it; a ``CheckpointError`` inside the block (the data cut short since the header was
    read) is the same ``LoraError`` as a damaged header's."""
    path = Path(path).expanduser()
    label = path.name
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL byte, which no file name has
        mode = 0
    except OSError as err:  # e.g. EACCES on a parent folder, which is_file() raised instead of saying False
        raise unreadable_lora(path, err) from err
    if stat.S_ISDIR(mode):
        raise LoraError(f"LoRA {path} is a folder, not a file", "give one of the .safetensors files in it")
    if not stat.S_ISREG(mode):
        raise LoraError(f"LoRA file {path} does not exist",
                        hint="put the file back, or leave the LoRA out: drop its --lora, or switch it off in the "
                             "LoRA panel")  # fmt: skip
    try:
        with open_safetensors(path) as (f, _, header):  # names a pickle, a truncated or damaged file
            yield path, f, header, check_layout(label, header)
    except CheckpointError as err:
        raise _unreadable_data(label, err) from None


def _unreadable_data(label: str, err: CheckpointError) -> LoraError:
    """The error for a file ``label`` whose safetensors header or data cannot be read (``err`` says why)."""
    why = str(err).removeprefix(label + ": ")
    return LoraError(f"{label} is not a readable .safetensors LoRA file: {why}", hint=err.hint)


def _scale(
    label: str, base: str, alpha: torch.Tensor | None, metadata: dict[str, str], component: str, module: str, rank: int
) -> float:
    """alpha / rank. An alpha of 0 means alpha = rank, as kohya's trainer reads it (the LoRA was trained at
    that scale; read as 0, it would silently do nothing); a NaN or infinite one is refused."""
    if alpha is None:
        return metadata_scale(metadata, component, module, rank)
    value = float(alpha.float().item())
    if not math.isfinite(value):
        raise LoraError(f"{label}: {base}.alpha is {value}, not a number a LoRA can be scaled by",
                        hint="the file is damaged: download it again")  # fmt: skip
    return value / rank if value != 0.0 else 1.0


def _tensor(label: str, key: str, entry: dict, raw: bytearray) -> torch.Tensor:
    """The tensor ``key`` of the file (``entry``: its header entry) from its bytes ``raw``: float32 [shape], or an
    alpha's own dtype; factors are converted here, as each is read (a file's fp32 copy is twice a bf16 file: it
    is never held beside all of the file's own bytes). A copy of the bytes, never a view of a mapped file."""
    dtype = TORCH_DTYPES.get(entry["dtype"])
    shape = tuple(entry["shape"])
    if dtype is None or len(raw) != math.prod(shape) * dtype.itemsize:
        what = f"dtype {entry['dtype']}" if dtype is None else f"{len(raw)} bytes for shape {list(shape)}"
        raise LoraError(f"{label}: tensor {key} has {what}: the file is damaged", hint="download the file again")
    t = torch.frombuffer(raw, dtype=dtype).reshape(shape) if raw else torch.zeros(shape, dtype=dtype)
    # An alpha is read as it is; an fp32 factor is ``raw`` itself, a buffer of its own that nothing else holds.
    return t if not t.is_floating_point() or t.numel() == 1 else t.float()


def read_lora(path: str | Path, check: Callable[[str, LoraLayout], None] | None = None) -> LoraFile:
    """Read and validate a FLUX.1 LoRA file (any supported format); raises ``LoraError``. The file is read once,
    start to end (``read_opened``): each tensor converted to float32 as it is read, both hashes taken on the way.
    ``check``: called with the file's name and its layout (its header) before any tensor data is read; what it
    raises ends the read (``LoraManager`` refuses a LoRA for another model there, without reading it whole)."""
    tensors: dict[str, torch.Tensor] = {}
    # A missing file, a folder, a pickle or another model's LoRA is named before any data is read; the layout and
    # the data come from one open file, so a file replaced meanwhile is never mixed in.
    with _open_lora(path) as (path, f, header, layout):
        label = path.name
        if check is not None:
            check(label, layout)
        whole, data = read_opened(
            f, label, header, lambda key, entry, raw: tensors.__setitem__(key, _tensor(label, key, entry, raw))
        )
    metadata = dict(header.get("__metadata__", {}))

    targets = []
    for base, (modules, swap) in layout.modules.items():
        roles = layout.keys[base]
        down, up = tensors[roles["down"]], tensors[roles["up"]]
        # A 1×1 convolution's factor [n, r, 1, 1] is the linear [n, r]; each factor on its own, as check_layout
        # read their shapes (one file may give a convolution's factor beside a linear's).
        down, up = (t.flatten(1) if t.dim() == 4 else t for t in (down, up))
        rank = layout.ranks[base]
        component = layout.components[base]
        scale = _scale(label, base, tensors.get(roles.get("alpha", "")), metadata, component, modules[0], rank)
        if not torch.isfinite(down).all() or not torch.isfinite(up).all():
            raise LoraError(f"{label}: {base} contains NaN or infinite values",
                            hint="the file is damaged, or its training broke down: use another copy")  # fmt: skip
        targets.append(LoraTarget(base, modules, down, up, scale, swap, component))
    return LoraFile(
        # The name it was given by, not its link's target: a Hugging Face cache's style.safetensors is a link to a
        # blob named by its hash, which the PNG's lora_list then named as the file (``ActiveLora.describe``)
        path=named_path(path),
        name=path.stem,
        format=layout.format,
        targets=targets,
        sha256=whole,
        data_sha256=data,
        metadata=metadata,
        trigger_words=trigger_words_from(metadata),
        keys=key_names(header),
    )
