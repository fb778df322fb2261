"""LoRAs on the tiny FLUX, 4-bit and 16-bit: every file format against diffusers' own ``load_lora_weights``,
bit-exact removal and strength 0, composition, and clear refusals that leave the model usable."""

from __future__ import annotations

import re

import pytest
import torch
from lora_files import (
    XLABS_DOUBLE,
    XLABS_SINGLE,
    convert,
    drop_matching,
    rename_keys,
    save_peft_lora,
    sdxl_like,
    to_xlabs,
    xlabs_modules,
)

from gpu.checkpoint.skeleton import load_quantized_transformer
from gpu.lora import LoraError, manager_for, read_lora, split_lora_arg
from gpu.modules import SVDQLinear

FORMAT_CASES = ["diffusers", "peft-raw", "kohya-diffusers", "kohya", "bfl", "bfl-down-up"]


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(2, 16, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(2, 8, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(2, cfg.pooled_projection_dim, generator=g),
        timestep=torch.tensor([0.3, 0.8]), img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3),
    )  # fmt: skip


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def files(tiny_flux, tmp_path_factory):
    d = tmp_path_factory.mktemp("loras")
    a = save_peft_lora(tiny_flux, d / "a", seed=1)
    b = save_peft_lora(tiny_flux, d / "b", rank=8, alpha=4.0, seed=2)
    out = {"diffusers": a, "b": b}
    for fmt in ("peft-raw", "kohya-diffusers", "kohya", "bfl"):
        out[fmt] = convert(a, fmt, d / f"a-{fmt}.safetensors")
    out["bfl-down-up"] = convert(a, "bfl", d / "a-bfl2.safetensors", lora_ab=False)
    return out


@pytest.fixture(scope="module")
def pipe16(tiny_flux):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux, torch_dtype=torch.float32)
    pipe.transformer.eval()
    return pipe


@pytest.fixture(scope="module")
def reference(pipe16, files):
    """Transformer outputs of the 16-bit model: base, with LoRA a (diffusers' own loader), a+b composed."""
    tr = pipe16.transformer
    x = _inputs(tr.config)
    out = {}
    with torch.no_grad():
        out["base"] = tr(**x).sample
        pipe16.load_lora_weights(str(files["diffusers"]), adapter_name="a")
        out["a"] = tr(**x).sample
        pipe16.load_lora_weights(str(files["b"]), adapter_name="b")
        pipe16.set_adapters(["a", "b"], [0.7, -0.5])
        out["a+b"] = tr(**x).sample
    pipe16.unload_lora_weights()
    with torch.no_grad():
        assert torch.equal(tr(**x).sample, out["base"])
    return out


@pytest.fixture(scope="module")
def q_model(tiny_flux_int4):
    model, _ = load_quantized_transformer(tiny_flux_int4, runtime_dtype=torch.float32)
    return model


@pytest.fixture(scope="module")
def f_model(tiny_flux):
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel.from_pretrained(tiny_flux, subfolder="transformer", torch_dtype=torch.float32).eval()


def _run(model, loras):
    manager_for(model).set(loras)
    with torch.no_grad():
        return model(**_inputs(model.config)).sample


def test_formats_are_detected(files):
    expect = {"diffusers": "diffusers", "peft-raw": "diffusers", "kohya-diffusers": "diffusers", "kohya": "kohya",
              "bfl": "bfl", "bfl-down-up": "bfl"}  # fmt: skip
    for case, fmt in expect.items():
        lora = read_lora(files[case])
        assert lora.format == fmt, case
        assert lora.name and len(lora.short_hash) == 12
    fused = read_lora(files["kohya"])
    qkv = [t for t in fused.targets if t.key.endswith("img_attn_qkv")][0]
    assert qkv.modules[1].endswith("attn.to_k") and qkv.rank == 12 and qkv.scale == pytest.approx(2.0)
    assert read_lora(files["diffusers"]).targets[0].scale == pytest.approx(2.0)  # alpha 8 / r 4, from metadata


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_16bit_model_matches_diffusers_loader(case, files, f_model, reference):
    y = _run(f_model, [(files[case], 1.0)])
    assert _rel(y, reference["a"]) < 1e-5, case
    assert torch.equal(_run(f_model, []), reference["base"])


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_4bit_model_with_lora_matches_16bit_with_lora(case, files, q_model, reference):
    y0 = _run(q_model, [])
    base_err = _rel(y0, reference["base"])
    y = _run(q_model, [(files[case], 1.0)])
    err = _rel(y, reference["a"])
    effect = _rel(reference["a"], reference["base"])
    assert effect > 0.1  # the LoRA changes the output a lot compared with the quantization error
    print(f"{case}: 4-bit+LoRA vs 16-bit+LoRA {err:.2e} (4-bit vs 16-bit {base_err:.2e}, LoRA effect {effect:.2e})")
    assert err < max(1.5 * base_err, 0.02), (case, err, base_err)
    w4a4 = [m for m in q_model.modules() if isinstance(m, SVDQLinear) and m.spec.act_format]
    assert all(m.lora_down.shape[1] % 16 == 0 and m.spec.rank == m.lora_down.shape[1] for m in w4a4)
    assert w4a4[0].lora_down.shape[1] == 32 + 16  # rank 32 + 4 (or 12 fused) padded to 16
    _run(q_model, [])


@pytest.fixture(scope="module")
def xlabs(tiny_flux, tmp_path_factory):
    """A PEFT LoRA's attention layers as an XLabs-AI file (``to_xlabs``), and the same layers' LoRAs as a raw PEFT
    file: strong, as attention-only LoRAs change the tiny model's output less (by ~3e-3 at LoRA a's size)."""
    d = tmp_path_factory.mktemp("xlabs")
    peft = save_peft_lora(tiny_flux, d / "peft", seed=3, effect=1.0)
    layers = "|".join(map(re.escape, xlabs_modules()))
    raw = convert(peft, "peft-raw", d / "raw.safetensors")  # alpha as tensors: kept where keys are dropped
    return to_xlabs(peft, d / "xlabs.safetensors"), drop_matching(raw, d / "same.safetensors",
                                                                  rf"^base_model\.model\.(?!(?:{layers})\.)")


@pytest.fixture(scope="module")
def xlabs_reference(pipe16, xlabs, reference):
    """The 16-bit model's output with the XLabs file through diffusers' own XLabs reader (after ``reference``,
    which leaves the pipeline without LoRAs)."""
    tr = pipe16.transformer
    with torch.no_grad():
        pipe16.load_lora_weights(str(xlabs[0]), adapter_name="xlabs")
        y = tr(**_inputs(tr.config)).sample
    pipe16.unload_lora_weights()
    return y


def test_xlabs_file_is_the_peft_lora_on_its_layers(xlabs):
    """Each XLabs processor LoRA lands on the diffusers modules it adds to (a single block's qkv on q, k, v only,
    not proj_mlp), with the merged update scale * B @ A of the PEFT LoRA it was made from."""
    lora, same = read_lora(xlabs[0]), read_lora(xlabs[1])
    assert lora.format == "xlabs" and len(lora.targets) == 2 * len(XLABS_DOUBLE) + 2 * len(XLABS_SINGLE)
    peft = {t.modules[0]: t for t in same.targets}
    assert sorted(m for t in lora.targets for m in t.modules) == sorted(xlabs_modules()) == sorted(peft)
    for t in lora.targets:
        assert t.scale == 1.0  # no alpha: x-flux and diffusers apply B @ A as it is
        rows = torch.split(t.up, [peft[m].up.shape[0] for m in t.modules])
        for m, up in zip(t.modules, rows, strict=True):
            want = peft[m].scale * peft[m].up @ peft[m].down
            torch.testing.assert_close(t.scale * up @ t.down, want, rtol=1e-6, atol=1e-7, msg=m)


def test_xlabs_lora_matches_diffusers_loader(xlabs, f_model, q_model, reference, xlabs_reference):
    """An XLabs-AI file (refused before as "not a FLUX.1 LoRA") on the 16-bit model against diffusers' own XLabs
    reader; on the 4-bit model, as the same layers' PEFT LoRA, and within the other formats' tolerance of 16 bits
    (a strong attention LoRA: its 4-bit error is ~4x the model's, the same for both files)."""
    assert _rel(_run(f_model, [(xlabs[0], 1.0)]), xlabs_reference) < 1e-5
    _run(f_model, [])
    base_err = _rel(_run(q_model, []), reference["base"])
    y = _run(q_model, [(xlabs[0], 1.0)])
    assert _rel(y, _run(q_model, [(xlabs[1], 1.0)])) < 1e-6
    err, effect = _rel(y, xlabs_reference), _rel(xlabs_reference, reference["base"])
    print(f"xlabs: 4-bit+LoRA vs 16-bit+LoRA {err:.2e} (4-bit vs 16-bit {base_err:.2e}, LoRA effect {effect:.2e})")
    assert effect > 0.1 and err < max(1.5 * base_err, 0.02), (err, base_err, effect)
    _run(q_model, [])


def test_peft_adapter_name_is_left_out(files, tmp_path):
    """A PEFT state dict saved with its adapter's name (``lora_A.default.weight``) reads as the same file without it;
    one with two adapters' names is refused, naming them."""
    named = rename_keys(files["diffusers"], tmp_path / "named.safetensors",
                        lambda k: re.sub(r"\.lora_([AB])\.weight$", r".lora_\1.default.weight", k))  # fmt: skip
    plain, lora = read_lora(files["diffusers"]), read_lora(named)
    assert lora.format == "diffusers" and len(lora.targets) == len(plain.targets)
    for a, b in zip(plain.targets, lora.targets, strict=True):
        assert (a.key, a.modules, a.scale) == (b.key, b.modules, b.scale)  # scale 2: alpha from the metadata
        assert torch.equal(a.down, b.down) and torch.equal(a.up, b.up)
    two = rename_keys(named, tmp_path / "two.safetensors",
                      lambda k: k.replace("blocks.1.attn.to_q.lora_A.default", "blocks.1.attn.to_q.lora_A.other"))
    with pytest.raises(LoraError, match=r"holds 2 PEFT adapters \(default, other\)"):
        read_lora(two)


def test_strength_zero_and_removal_are_bit_exact(files, q_model):
    layers = [m for m in q_model.modules() if isinstance(m, SVDQLinear)]
    before = {id(m): (m._buffers.get("lora_down"), m._buffers.get("lora_up"), m.spec) for m in layers}
    y0 = _run(q_model, [])
    assert torch.equal(_run(q_model, [(files["diffusers"], 0.0)]), y0)
    y1 = _run(q_model, [(files["kohya"], 1.0), (files["b"], -1.2)])
    assert not torch.equal(y1, y0)
    assert torch.equal(_run(q_model, []), y0)
    for m in layers:  # the very same tensors are back, nothing added
        down, up, spec = before[id(m)]
        assert m._buffers.get("lora_down") is down and m._buffers.get("lora_up") is up and m.spec == spec
    # changing a strength rebuilds from the originals: same result as applying it fresh
    _run(q_model, [(files["bfl"], 1.0)])
    y_half = _run(q_model, [(files["bfl"], 0.5)])
    _run(q_model, [])
    assert torch.equal(_run(q_model, [(files["bfl"], 0.5)]), y_half)
    _run(q_model, [])


def test_two_loras_compose(files, q_model, f_model, reference):
    pair = [(files["diffusers"], 0.7), (files["b"], -0.5)]
    assert _rel(_run(f_model, pair), reference["a+b"]) < 1e-5
    base_err = _rel(_run(q_model, []), reference["base"])
    assert _rel(_run(q_model, pair), reference["a+b"]) < max(1.5 * base_err, 0.02)
    _run(q_model, [])
    _run(f_model, [])


def test_bad_files_fail_clearly_and_leave_the_model_usable(files, q_model, tmp_path):
    y_a = _run(q_model, [(files["diffusers"], 1.0)])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    unknown = rename_keys(files["kohya"], tmp_path / "lokr.safetensors",
                          lambda k: k.replace("single_blocks_1_linear2.lora_down", "single_blocks_1_linear2.lokr_w1"))
    missing_b = drop_matching(files["bfl"], tmp_path / "no-b.safetensors", r"double_blocks\.0\.img_mlp\.2\.lora_B")
    too_deep = rename_keys(files["kohya"], tmp_path / "deep.safetensors",
                           lambda k: k.replace("single_blocks_1_", "single_blocks_37_"))
    bigger = tmp_path / "wrong-size.safetensors"
    from safetensors.torch import save_file

    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.randn(4, 3072),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.randn(3072, 4)}, bigger)
    cases = [
        (garbage, "not a readable .safetensors"),
        (sdxl_like(tmp_path / "sdxl.safetensors"), "Stable Diffusion 1.x/2.x/SDXL"),
        (unknown, "lora_unet_single_blocks_1_linear2.lokr_w1.weight"),
        (missing_b, "double_blocks.0.img_mlp.2 has no up (B)"),
        (too_deep, "single_transformer_blocks.37"),
        (bigger, "expects 3072 inputs"),
        (tmp_path / "nope.safetensors", "does not exist"),
    ]
    for path, words in cases:
        with pytest.raises(LoraError) as err:
            manager_for(q_model).set([(files["diffusers"], 1.0), (path, 1.0)])
        assert words in str(err.value), (path.name, str(err.value))
        with torch.no_grad():
            assert torch.equal(q_model(**_inputs(q_model.config)).sample, y_a)  # untouched, LoRA a still on
    with pytest.raises(LoraError, match="strength 3"):
        manager_for(q_model).set([(files["diffusers"], 3.0)])
    _run(q_model, [])


def test_split_lora_arg():
    """The text of ``--lora`` alone (``parse_lora_arg`` also checks the file: tests/test_lora_inputs.py)."""
    assert split_lora_arg("style.safetensors") == ("style.safetensors", 1.0)
    assert split_lora_arg("a/b.safetensors:0.6") == ("a/b.safetensors", 0.6)
    assert split_lora_arg("C:\\x\\s.safetensors:-1") == ("C:\\x\\s.safetensors", -1.0)
    assert split_lora_arg("C:\\x\\s.safetensors") == ("C:\\x\\s.safetensors", 1.0)


def test_split_lora_arg_takes_a_text_strength_and_names_a_bad_value(tmp_path):
    """``FILE:STRENGTH:TEXT_STRENGTH`` (ComfyUI's strength_model and strength_clip); a colon of the file's own
    name or a Windows drive is no separator; after an existing file, what is no number, or one value too many, is
    named rather than read as part of a file name that does not exist."""
    assert split_lora_arg("a/b.safetensors:0.6:-0.25") == ("a/b.safetensors", 0.6, -0.25)
    assert split_lora_arg("C:\\x\\s.safetensors:1:0") == ("C:\\x\\s.safetensors", 1.0, 0.0)
    odd = tmp_path / "at 10:30.safetensors"
    odd.write_bytes(b"")
    assert split_lora_arg(f"{odd}:0.8:0.5") == (str(odd), 0.8, 0.5)
    assert split_lora_arg(str(odd)) == (str(odd), 1.0)
    bad = {":abc": "strength 'abc' is not a number", ":0.5:x": "text strength 'x' is not a number",
           ":y:0.5": "strength 'y' is not a number", ":1:1:1": "3 values follow the file name"}  # fmt: skip
    for tail, words in bad.items():
        with pytest.raises(LoraError, match=f"^--lora {re.escape(str(odd) + tail)}: {words}"):
            split_lora_arg(str(odd) + tail)


@pytest.mark.parametrize("header", [b"[1,2]", b'{"a.lora_A.weight": 3}', b'{"__metadata__": 5}', b'"x"'])
def test_header_summary_names_a_malformed_header(header, tmp_path):
    from gpu.errors import CheckpointError
    from gpu.lora.metadata import header_summary

    path = tmp_path / "odd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match="the file is corrupt$"):  # a plain-words error, nothing else
        header_summary(path)
    with pytest.raises(CheckpointError, match=f"^{tmp_path.name}: cannot read the file"):  # a folder
        header_summary(tmp_path)
