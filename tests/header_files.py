"""Model files for identification tests: real safetensors headers over zero-filled (sparse) data, in the layouts
other tools write (Forge's bitsandbytes NF4, Nunchaku's SVDQuant, a T5 shard). Nothing reads their values."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I8": 1, "I32": 4}


def header_only(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]], meta: dict | None = None) -> Path:
    """A .safetensors file at ``path`` whose header lists ``tensors`` (name -> (dtype, shape)), data all zero."""
    header: dict = {}
    at = 0
    for name, (dtype, shape) in tensors.items():
        n = _BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + n]}
        at += n
    if meta:
        header["__metadata__"] = meta
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + at)  # sparse: no bytes written for the data
    return path


def bfl_tensors(prefix: str = "", width: int = 64) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The names and shapes a FLUX.1 transformer has in BFL's layout (a few blocks' worth, bf16)."""
    return {f"{prefix}{k}": ("BF16", s) for k, s in {
        "img_in.weight": (width, 64), "img_in.bias": (width,), "txt_in.weight": (width, 32),
        "vector_in.in_layer.weight": (width, 32), "guidance_in.in_layer.weight": (width, 256),
        "double_blocks.0.img_attn.qkv.weight": (3 * width, width),
        "double_blocks.0.img_attn.proj.weight": (width, width),
        "single_blocks.0.linear1.weight": (4 * width, width),
    }.items()}  # fmt: skip


def forge_nf4_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    """A Forge ``flux1-dev-bnb-nf4`` file's layout: the BFL names under ``model.diffusion_model.``, each linear
    weight packed by bitsandbytes (U8 ``[N*K/2, 1]``) beside its absmax, quant map and quant state."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, (dtype, shape) in bfl_tensors("model.diffusion_model.").items():
        if name.endswith(".weight") and len(shape) == 2:
            numel = shape[0] * shape[1]
            out[name] = ("U8", (numel // 2, 1))
            out[f"{name}.absmax"] = ("F32", (numel // 64,))
            out[f"{name}.quant_map"] = ("F32", (16,))
            out[f"{name}.quant_state.bitsandbytes__nf4"] = ("U8", (100,))
        else:
            out[name] = (dtype, shape)
    out["first_stage_model.decoder.conv_in.weight"] = ("BF16", (4,))
    return out


def nunchaku_tensors(new_layout: bool) -> dict[str, tuple[str, tuple[int, ...]]]:
    """A Nunchaku SVDQuant FLUX.1 file's names (diffusers block names, fused ``qkv_proj``): the new layout's
    ``.smooth_factor``/``.proj_down``/``.proj_up``, or the old one's ``.smooth``/``.lora_down``/``.lora_up``."""
    smooth, down, up = (".smooth_factor", ".proj_down", ".proj_up") if new_layout else (".smooth", ".lora_down",
                                                                                          ".lora_up")  # fmt: skip
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    blocks = ("transformer_blocks.0.qkv_proj", "transformer_blocks.0.mlp_fc1", "single_transformer_blocks.0.qkv_proj")
    for block in blocks:
        out[f"{block}.qweight"] = ("I8", (192, 32))
        out[f"{block}.wscales"] = ("BF16", (1, 192))
        out[f"{block}{smooth}"] = ("BF16", (64,))
        out[f"{block}{down}"] = ("BF16", (64, 32))
        out[f"{block}{up}"] = ("BF16", (192, 32))
        out[f"{block}.bias"] = ("BF16", (192,))
    out["x_embedder.weight"] = ("BF16", (64, 64))
    return out


def t5_shard_tensors() -> dict[str, tuple[str, tuple[int, ...]]]:
    """The second shard of a FLUX.1 pipeline's T5 (``text_encoder_2/model-00002-of-00002.safetensors``): only
    ``encoder.block.*`` and ``encoder.final_layer_norm.*``, the names a VAE's "all under encoder." test matched."""
    return {"encoder.block.23.layer.0.SelfAttention.k.weight": ("F16", (4, 4)),
            "encoder.block.23.layer.1.DenseReluDense.wo.weight": ("F16", (4, 4)),
            "encoder.final_layer_norm.weight": ("F16", (4,))}  # fmt: skip


def another_svdq_model(source: Path, out: Path) -> Path:
    """An SVDQ file at ``out`` of the same size as ``source``'s but other weights: a byte of its first 16-bit tensor
    that is not a quantized layer's changed, and the data checksum its header records with it (64 hex digits, as
    long as before: the header keeps its length). What ``cp -p`` of another model of the same size puts in place."""
    import hashlib

    raw = bytearray(source.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    layers = json.loads(header["__metadata__"]["svdq"])["layers"]
    key = next(k for k, e in header.items() if k != "__metadata__" and e["dtype"] == "BF16"
               and k.rpartition(".")[0] not in layers)  # fmt: skip
    at = 8 + n + header[key]["data_offsets"][0]
    raw[at] ^= 0x01  # the lowest bit of a bf16 value's mantissa: another finite number
    old = json.loads(header["__metadata__"]["svdq"])["sha256"].encode()
    new = hashlib.sha256(raw[8 + n :]).hexdigest().encode()
    head = bytes(raw[8 : 8 + n])
    assert head.count(old) == 1
    raw[8 : 8 + n] = head.replace(old, new)
    out.write_bytes(raw)
    return out


def edit_header(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """``src`` copied to ``dst`` with its safetensors header (a dict) changed by ``edit``; the data section and the
    checksum it records stay as they were (valid, where the edit leaves the checksum alone)."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return dst


def edit_svdq_meta(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """``edit_header`` of the SVDQ metadata JSON alone (a dict given to ``edit``), as a hand edit would change it."""

    def edit_meta(header: dict) -> None:
        data = json.loads(header["__metadata__"]["svdq"])
        edit(data)
        header["__metadata__"]["svdq"] = json.dumps(data)

    return edit_header(src, dst, edit_meta)
