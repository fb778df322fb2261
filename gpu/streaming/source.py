"""Lazy, memory-mapped reading of a transformer's weights, block by block.

Two layouts are read (never ``torch.load``; every tensor comes from ``safetensors.safe_open``):

* a diffusers folder: ``transformer/*.safetensors`` (sharded or not), diffusers key names;
* a single-file BFL checkpoint as distributed (``flux1-dev.safetensors``), BFL key names (bare, or under
  ComfyUI's ``model.diffusion_model.``: ``gpu.bfl_names.bfl_prefix``), mapped to diffusers names by ``bfl_to_diffusers``
  below.

Which diffusers tensor each BFL tensor becomes (fused q/k/v rows split, the final modulation's halves swapped) is
``gpu.bfl_names``' table, which the LoRA reader maps BFL LoRAs by too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from gpu.bfl_layout import (
    INCOMPLETE,
    implied_config,
    incomplete_transformer,
    inspect_single_file,
    malformed_transformer,
)
from gpu.bfl_names import (
    DOUBLE_LINEARS,
    DOUBLE_NORMS,
    SINGLE_LINEARS,
    SINGLE_NORMS,
    TOP_LINEARS,
    BflLinear,
    bfl_prefix,
)
from gpu.errors import CheckpointError, ModelLoadError, named_few
from gpu.model_libraries import load_model_libraries
from gpu.safetensors_header import (
    MODEL_AGAIN,
    checked_weight_files,
    is_safetensors_name,
    read_safetensors_header,
)

Getter = Callable[[], torch.Tensor]


# diffusers tensor name -> (its shape as its getter gives it, the file's tensor it comes from (some rows of it, in a
# fused layer), that tensor's shape in the file)
Shapes = dict[str, tuple[list[int], str, list[int]]]


class WeightSource:
    """name (diffusers) -> lazy getter; ``config``: the FluxTransformer2DModel config (all init args). ``shapes``:
    each getter's tensor shape, read from the headers, checked against the config's before any tensor is read."""

    def __init__(self, files: list[Path], getters: dict[str, Getter], raw_config: dict, root: Path | None = None,
                 *, shapes: Shapes) -> None:  # fmt: skip
        self.files = files
        self.root = root  # the diffusers folder ``files`` lie in; None: a single file
        self.getters = getters
        load_model_libraries()  # another thread (the app's engine) may be importing them: see gpu.model_libraries
        from diffusers import FluxTransformer2DModel

        with torch.device("meta"):
            model = FluxTransformer2DModel.from_config(raw_config)
        self.config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()
                       if not k.startswith("_")}  # fmt: skip
        label = ", ".join(f.name for f in files)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(getters))
        if missing:  # else a block's strict load fails hours into a run, with a PyTorch traceback
            raise ModelLoadError(f"{label}: the transformer lacks {len(missing)} tensors ({named_few(missing)})",
                                 INCOMPLETE)  # fmt: skip
        _check_shapes(label, {k: list(t.shape) for k, t in expected.items()}, shapes)
        self.n_double = int(self.config["num_layers"])
        self.n_single = int(self.config["num_single_layers"])

    def identity(self) -> list:
        """What the resume key hashes of the weights: every weight file's path inside the source (from the pipeline
        folder, ``transformer/...``; a single file's name, as its links lead to it), size, modification time and
        ``sampled_digest``. Not where the source lies: moved to another drive or mount point (or copied keeping its
        times, as ``cp -p`` and ``shutil.copy2`` do), its files are the same, and a run resumes from their finished
        blocks (it started over, saying "other source weights", when the key held the absolute paths). The digest
        is there because name, size and time are not enough without the path: two fine-tunes of one model in one
        dtype have the same size, and unpacked archives or downloads keeping the server's time can share the time.
        A copy onto a file system that keeps times coarser (FAT, exFAT) reads its times rounded: the engine takes a
        time within 2 s as the same (``gpu.streaming.resume._same_file``)."""
        stats = [(f, f.stat()) for f in self.files]  # one look at each: size and time of one moment
        return [(self._inside(f), st.st_size, st.st_mtime_ns, sampled_digest(f)) for f, st in stats]

    def _inside(self, file: Path) -> str:
        if self.root is None:
            return file.resolve().name
        try:
            return file.relative_to(self.root).as_posix()
        except ValueError:  # an index naming a shard outside the folder ("../x"): where it is, then
            return str(file.resolve())

    def resolved_files(self) -> list[str]:
        """The weight files' resolved paths: what the resume key of earlier versions (parts folders made before
        ``identity`` took the paths inside the source) hashed."""
        return [str(f.resolve()) for f in self.files]

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Every tensor whose name starts with ``prefix`` (prefix removed), read now from the mapped file."""
        return {k[len(prefix):]: g() for k, g in self.getters.items() if k.startswith(prefix)}

    def head_tensors(self) -> dict[str, torch.Tensor]:
        """Everything outside the blocks (embedders, norm_out, proj_out)."""
        return {k: g() for k, g in self.getters.items() if not k.startswith(("transformer_blocks.",
                                                                              "single_transformer_blocks."))}


def _check_shapes(label: str, expected: dict[str, list[int]], shapes: Shapes) -> None:
    """ModelLoadError naming the tensors of the weight files ``label`` whose ``shapes`` are not the ``expected``
    ones of the transformer's config (diffusers name -> shape): a block holding one failed to load hours into a
    run, with PyTorch's size-mismatch error."""
    by_file: dict[str, tuple[list[int], list[int]]] = {}  # the file's tensor -> (its shape, the one it should have)
    for k, want in expected.items():
        if k in shapes and shapes[k][0] != want:
            given, src, found = shapes[k]
            # said of the file's tensor, of which a fused layer's module takes some rows (their count checked before)
            whole = want if given == found else [found[0] - given[0] + want[0], *want[1:]]
            by_file.setdefault(src, (found, whole))
    wrong = sorted((src, found, want) for src, (found, want) in by_file.items())
    if not wrong:
        return
    if len(wrong) == 1:
        src, found, want = wrong[0]
        raise ModelLoadError(f"{label}: {src} is {found} where a FLUX.1 transformer of these sizes has {want}",
                             INCOMPLETE)  # fmt: skip
    few = named_few([f"{src} is {found} (not {want})" for src, found, want in wrong])
    raise ModelLoadError(f"{label}: {len(wrong)} tensors have other shapes than a FLUX.1 transformer of these sizes: "
                         f"{few}", INCOMPLETE)  # fmt: skip


def _first_line(err: BaseException) -> str:
    """The reason ``err`` gives, without the path an OSError repeats after it."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.split(": ")[0]
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _file_getter(path: Path, key: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Getter:
    """Reads ``key`` of ``path`` when called, hours after the run checked the file: ModelLoadError naming the file
    when it has gone or changed since (a drive unplugged, a copy or download over it): the raw OSError or safetensors
    error named no model, and a damaged header crashed the run with a traceback."""

    def get() -> torch.Tensor:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return f.get_slice(key)[:] if transform is None else transform(f.get_tensor(key))
        except (OSError, SafetensorError) as err:
            what = (f"{path} is gone since the run started" if not path.exists() else
                    f"{path} can no longer be read ({_first_line(err)}): it changed since the run started, or "
                    "its disk fails")  # fmt: skip
            raise ModelLoadError(what, f"put the model's files back as they were, or {MODEL_AGAIN}") from None

    return get


def diffusers_folder_source(folder: Path) -> WeightSource:
    """The transformer of the diffusers pipeline at ``folder``; ModelLoadError naming a missing or damaged weight
    file (it may have changed since the library listed the folder)."""
    tdir = folder / "transformer"
    raw = json.loads((tdir / "config.json").read_bytes())  # UTF-8 whatever the system encoding
    files = checked_weight_files(tdir, folder.resolve().name)
    getters: dict[str, Getter] = {}
    shapes: Shapes = {}
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as h:
            for k in h.keys():
                getters[k] = _file_getter(f, k)
                shape = list(h.get_slice(k).get_shape())
                shapes[k] = (shape, k, shape)
    return WeightSource(files, getters, raw, folder, shapes=shapes)


def is_bfl_file(path: Path) -> bool:
    """``path`` is a ``.safetensors`` file (in any case, as the library takes it) holding a BFL-layout FLUX
    transformer (``gpu.bfl_names.bfl_prefix``)."""
    if not is_safetensors_name(path) or not path.is_file():
        return False
    try:
        _, header = read_safetensors_header(path)
    except CheckpointError:  # unreadable or damaged: let the library report it in plain words
        return False
    return bfl_prefix(header) is not None


def _rows(a: int, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform taking rows [a, b) of a fused layer's [out, in] weight or [out] bias (any dtype), contiguous."""
    return lambda t: t[a:b].contiguous()


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    """``t`` ([2D, in] weight or [2D] bias, any dtype) with its two D-row halves traded: BFL's final modulation emits
    shift, scale; diffusers' norm_out expects scale, shift."""
    shift, scale = t.chunk(2, dim=0)
    return torch.cat([scale, shift], dim=0)


def bfl_to_diffusers(name: str, shapes: dict[str, list[int]]) -> tuple[dict, dict, Shapes]:
    """BFL tensor shapes (unprefixed name -> shape) of the file ``name`` -> (diffusers name -> (bfl key,
    transform or None), raw diffusers config inferred from the shapes, each diffusers tensor's shape as its transform
    gives it with the BFL tensor it comes from). The names come from ``gpu.bfl_names``.
    ModelLoadError naming a fused layer (qkv, linear1) whose rows do not split into those of FLUX.1's modules; a
    tensor the config is read from absent raises KeyError (``bfl_file_source`` says it); any other absent one is left
    unmapped, for ``WeightSource``'s check to name."""
    keys = set(shapes)
    config = implied_config(name, shapes)  # ModelLoadError when a tensor every FLUX.1 has is absent
    m: dict[str, tuple[str, Callable | None]] = {}
    dst_shapes: Shapes = {}
    dim = shapes["img_in.weight"][0]

    def lin(src: str, dst: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
            rows: tuple[int, int] | None = None) -> None:  # fmt: skip
        """``rows``: the [start, end) rows of ``src`` that ``transform`` takes; None: all of them."""
        for p in ("weight", "bias"):
            if f"{src}.{p}" in keys:
                m[f"{dst}.{p}"] = (f"{src}.{p}", transform)
                shape = shapes[f"{src}.{p}"]
                given = shape if rows is None else [rows[1] - rows[0], *shape[1:]]
                dst_shapes[f"{dst}.{p}"] = (given, f"{src}.{p}", shape)

    def layer(src: str, dst: str, linear: BflLinear) -> None:
        """The getters of the BFL linear ``src`` under the diffusers names ``dst`` + each of its modules."""
        if len(linear.modules) == 1:
            lin(src, dst + linear.modules[0], _swap_halves if linear.swap_halves else None)
            return
        # A fused layer of other rows would be split into slices of the wrong size, one of them perhaps empty
        # (linear1 of 3D rows: no MLP input), and the block holding it fail to load hours into a run.
        rows = linear.rows(dim)
        for p in ("weight", "bias"):
            if f"{src}.{p}" in keys and (found := shapes[f"{src}.{p}"][:1]) != [rows]:
                raise malformed_transformer(name, f"{src}.{p} has {found[0] if found else 0} rows where FLUX.1 "
                                                  f"has {rows} ({' + '.join(linear.modules)} at hidden size {dim})")
        for module, (a, b) in zip(linear.modules, linear.row_ranges(dim), strict=True):
            lin(src, dst + module, _rows(a, b), (a, b))

    for src, linear in TOP_LINEARS.items():
        layer(src, "", linear)
    for bfl_list, diffusers_list, count, linears, norms in (
        ("double_blocks", "transformer_blocks", config["num_layers"], DOUBLE_LINEARS, DOUBLE_NORMS),
        ("single_blocks", "single_transformer_blocks", config["num_single_layers"], SINGLE_LINEARS, SINGLE_NORMS),
    ):
        for i in range(count):
            s, d = f"{bfl_list}.{i}.", f"{diffusers_list}.{i}."
            for src, linear in linears.items():
                layer(s + src, d, linear)
            for src, dst in norms.items():
                if s + src in keys:  # else the completeness check names it, not the block's read hours later
                    m[d + dst] = (s + src, None)
                    dst_shapes[d + dst] = (shapes[s + src], s + src, shapes[s + src])
    raw = {
        "_class_name": "FluxTransformer2DModel",
        **config,
        "axes_dims_rope": [16, 56, 56],
        "patch_size": 1,
        "out_channels": None,
    }
    return m, raw, dst_shapes


def bfl_file_source(path: Path) -> WeightSource:
    """The BFL-layout transformer in ``path`` (bare, or under ComfyUI's prefix beside a VAE and text encoders,
    which are ignored), read lazily under diffusers names. ModelLoadError naming what the file is instead, or
    what a FLUX.1 transformer lacks or does not have in it."""
    facts = inspect_single_file(path)
    try:
        mapping, raw, shapes = bfl_to_diffusers(path.name, facts.shapes)
    except (KeyError, IndexError, ValueError, ZeroDivisionError) as err:  # a tensor absent, or of another shape
        raise incomplete_transformer(path.name, err) from None
    unmapped = set(facts.shapes) - {src for src, _ in mapping.values()}
    if unmapped:
        raise ModelLoadError(f"{path.name}: tensors a FLUX.1 transformer does not have: "
                             f"{named_few(sorted(unmapped))}",
                             "a FLUX variant or a scaled-FP8 file; use the 16-bit checkpoint")  # fmt: skip
    getters = {dst: _file_getter(path, facts.prefix + src, tf) for dst, (src, tf) in mapping.items()}
    return WeightSource([path], getters, raw, shapes=shapes)


def block_module(config: dict, kind: str) -> nn.Module:
    """An empty (meta-device) diffusers block of ``kind`` ("transformer_blocks" | "single_transformer_blocks")."""
    from diffusers.models.transformers.transformer_flux import FluxSingleTransformerBlock, FluxTransformerBlock

    dim = config["num_attention_heads"] * config["attention_head_dim"]
    cls = FluxTransformerBlock if kind == "transformer_blocks" else FluxSingleTransformerBlock
    with torch.device("meta"):
        return cls(dim=dim, num_attention_heads=config["num_attention_heads"],
                   attention_head_dim=config["attention_head_dim"])  # fmt: skip


def load_block(source: WeightSource, kind: str, index: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Block ``kind.index`` with its weights read from the mapped file and cast to ``dtype`` on ``device``."""
    block = block_module(source.config, kind)
    state = {k: v.to(device=device, dtype=dtype) for k, v in source.tensors(f"{kind}.{index}.").items()}
    block.load_state_dict(state, strict=True, assign=True)
    return block.eval()


def head_module(source: WeightSource) -> nn.Module:
    """The transformer without blocks (embedders, pos_embed, norm_out, proj_out) on the meta device: its sizes."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        return FluxTransformer2DModel.from_config({**source.config, "num_layers": 0, "num_single_layers": 0})


def load_head(source: WeightSource, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The transformer without blocks (embedders, pos_embed, norm_out, proj_out), weights loaded."""
    head = head_module(source)
    state = {k: v.to(device=device, dtype=dtype) for k, v in source.head_tensors().items()}
    head.load_state_dict(state, strict=True, assign=True)
    return head.eval()


def transformer_blocks(src: WeightSource) -> list[tuple[str, int]]:
    """The transformer's blocks in the order they run: (kind, index)."""
    return [("transformer_blocks", i) for i in range(src.n_double)] + [
        ("single_transformer_blocks", i) for i in range(src.n_single)]  # fmt: skip


def prefixed(block: torch.nn.Module, kind: str, index: int = 0) -> torch.nn.Module:
    """Wraps a block so its module names read ``kind.index.…`` (what the adapter rules and checkpoint use)."""
    outer = torch.nn.Module()
    blocks = torch.nn.Module()
    blocks.add_module(str(index), block)
    outer.add_module(kind, blocks)
    return outer


_SAMPLE = 1 << 20  # bytes read at each of a file's start, middle and end


def sampled_digest(path: Path) -> str:
    """The SHA-256 of a file's first, middle and last MiB (the first holds a safetensors header): milliseconds for
    a 24 GB file, and two models of the same size and layout differ in their weights there."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        for start in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
            f.seek(start)
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()

