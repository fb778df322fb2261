"""LoRAs whose files also change a text encoder (kohya ``lora_te1_``/``lora_te2_``, diffusers ``text_encoder.``/
``text_encoder_2.``): once refused whole, now merged into the demo pipeline's CLIP and T5 encoders with the
transformer's guarantees (checked first, strength 0 / removal bit-exact, re-applied on a change, untouched when
asked again), and prompt encodings made under one set are never served under another."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lora_files import DEMO_CLIP_LAYERS, DEMO_T5_LAYERS, rename_keys, text_encoder_lora
from safetensors.torch import load_file
from torch import nn

from gpu.generation.memory import (
    TEXT_ENCODERS,
    encoder_size,
    module_bytes,
    place_text_encoders,
    tensors_bytes,
    with_prompt_embeds,
)
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.lora import LoraError, LoraManager, check_lora_file, encoder_loras
from gpu.lora.apply import held_originals
from gpu.runtime.memory_policy import ModelSizes, choose_policy

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> GenerationService:
    """The demo pipeline, loaded once (16-bit encoders: the LoRA's CLIP and T5 parts merge into their weights)."""
    service = GenerationService(ModelLibrary(tmp_path_factory.mktemp("lib")))
    service.load("demo")
    return service


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("te-loras")
    return {
        "kohya": text_encoder_lora(d / "both kohya.safetensors"),
        "diffusers": text_encoder_lora(d / "both diffusers.safetensors", fmt="diffusers"),
        "clip": text_encoder_lora(d / "with clip.safetensors", t5=False, seed=1),
        "transformer": text_encoder_lora(d / "transformer only.safetensors", clip=False, t5=False, seed=1),
    }


def _layers(service: GenerationService) -> dict[str, torch.nn.Linear]:
    """The encoder linears the test LoRAs name, by "component.path"."""
    pipe = service.loaded.pipe
    names = [("text_encoder", n) for n in DEMO_CLIP_LAYERS] + [("text_encoder_2", n) for n in DEMO_T5_LAYERS]
    return {f"{c}.{n}": getattr(pipe, c).get_submodule(n) for c, n in names}


def _encode(service: GenerationService) -> tuple[torch.Tensor, torch.Tensor]:
    """(T5 embeddings, CLIP pooled) of PROMPT as a job gets them: through the pipeline's prompt cache."""
    kwargs = with_prompt_embeds(service.loaded, {"prompt": PROMPT, "max_sequence_length": 16})
    return kwargs["prompt_embeds"], kwargs["pooled_prompt_embeds"]


def _expected(path: Path, strength: float, original: torch.Tensor, layer: str) -> torch.Tensor:
    """W + strength·(alpha/r)·B·A of ``layer`` ("component.path") in fp32, rounded to W's dtype, from the kohya
    file's tensors (alpha = rank there)."""
    component, name = layer.split(".", 1)
    key = {"text_encoder": "lora_te1_text_model_", "text_encoder_2": "lora_te2_"}[component] + name.replace(".", "_")
    sd = load_file(path, device=str(original.device))  # the merge's fp32 product is taken on the weight's device
    delta = (strength * sd[f"{key}.lora_up.weight"].float()) @ sd[f"{key}.lora_down.weight"].float()
    return (original.float() + delta).to(original.dtype)


def test_clip_and_t5_parts_merge_restore_bit_exactly_and_reapply(service, loras):
    """The file was refused whole ("also changes a text encoder, which this app does not apply")."""
    loaded = service.loaded
    layers = _layers(service)
    originals = {name: m.weight for name, m in layers.items()}
    plain = _encode(service)

    active = service.apply_loras(loaded, [(str(loras["kohya"]), 1.0)])
    assert active[0].file.components == ["transformer", *TEXT_ENCODERS]
    for name, m in layers.items():
        assert torch.equal(m.weight, _expected(loras["kohya"], 1.0, originals[name], name)), name
    merged = {name: m.weight for name, m in layers.items()}
    embeds, pooled = _encode(service)  # not the cached encoding of the same prompt without the LoRA
    assert not torch.equal(pooled, plain[1]) and not torch.equal(embeds, plain[0])

    service.apply_loras(loaded, [(str(loras["kohya"]), 1.0)])  # the same set again touches nothing
    assert all(m.weight is merged[name] for name, m in layers.items())
    service.apply_loras(loaded, [(str(loras["diffusers"]), 1.0)])  # the same factors under diffusers' names
    assert all(torch.equal(m.weight, merged[name]) for name, m in layers.items())
    service.apply_loras(loaded, [(str(loras["diffusers"]), -0.5)])  # a changed strength re-applies
    assert not torch.equal(_encode(service)[1], pooled)
    for name, m in layers.items():
        assert torch.equal(m.weight, _expected(loras["kohya"], -0.5, originals[name], name)), name

    service.apply_loras(loaded, [(str(loras["diffusers"]), 0.0)])  # strength 0: the originals, bit for bit
    _assert_restored(layers, originals)
    assert all(torch.equal(a, b) for a, b in zip(_encode(service), plain, strict=True))
    loaded.prompt_cache.clear()  # encoded again by the restored encoders: bit for bit the original encoding
    assert all(torch.equal(a, b) for a, b in zip(_encode(service), plain, strict=True))


def test_a_clip_part_changes_the_image_and_removal_gives_it_back(service, loras):
    """Same prompt and seed, the same transformer layer: the file with a CLIP part beside it makes another image
    (the CLIP part is applied); without LoRAs, the original image comes back bit for bit."""
    request = dict(prompt=PROMPT, model="demo", seed=3, steps=2, width=64, height=64)

    def image(lora: str | None) -> np.ndarray:
        [made] = service.generate(GenerationRequest(**request, loras=[(str(loras[lora]), 1.0)] if lora else []))
        assert [d["changes"] for d in made.settings.get("lora_list", [])] == (
            [] if lora is None else [["transformer", "text_encoder"] if lora == "clip" else ["transformer"]]
        )
        return np.asarray(made.image)

    plain = image(None)
    assert not np.array_equal(image("clip"), image("transformer"))
    assert np.array_equal(image(None), plain)


def _assert_restored(layers: dict, originals: dict) -> None:
    """The encoders' layers hold their original weights bit for bit, on their device: the very objects where the
    encoder is in CPU memory (where the originals are kept), copies back on a GPU."""
    for name, m in layers.items():
        w = originals[name]
        assert torch.equal(m.weight, w) and m.weight.device == w.device and m.weight.dtype == w.dtype, name
        assert m.weight is w or w.device.type != "cpu", name


def test_a_text_strength_apart_goes_to_the_clip_and_t5_parts_and_zero_skips_one_part(service, loras):
    """One strength went to every part of a file (transformer, CLIP, T5); ComfyUI's strength_clip and A1111's
    ``te=`` set the text encoders' apart. (file, strength, text strength): the CLIP/T5 parts merge at the text
    strength, the transformer's at the strength; 0 for one part leaves that part's layers (and encodings) as they
    were; None, left out or equal is one set (nothing re-applied); the prompt cache follows the text strength."""
    loaded = service.loaded
    layers, kohya = _layers(service), str(loras["kohya"])
    originals = {name: m.weight for name, m in layers.items()}

    def proj() -> torch.Tensor:  # the transformer layer the file names (demo: 16-bit, merged)
        return loaded.pipe.transformer.get_submodule("transformer_blocks.0.attn.to_out.0").weight

    def on_encoders() -> list[tuple]:
        return [encoder_loras(getattr(loaded.pipe, n)) for n in TEXT_ENCODERS]

    plain_proj, plain = proj(), _encode(service)
    service.apply_loras(loaded, [(kohya, 1.0)])
    full_proj, full = proj(), _encode(service)

    [active] = service.apply_loras(loaded, [(kohya, 1.0, 0.5)])
    for name, m in layers.items():
        assert torch.equal(m.weight, _expected(loras["kohya"], 0.5, originals[name], name)), name
    assert torch.equal(proj(), full_proj)
    assert (active.describe()["strength"], active.describe()["text_strength"]) == (1.0, 0.5)
    assert on_encoders() == [((active.file.sha256, 0.5),)] * 2
    half = _encode(service)
    assert not torch.equal(half[1], full[1]) and not torch.equal(half[1], plain[1])

    [active] = service.apply_loras(loaded, [(kohya, 1.0, 0.0)])  # the text part off, the transformer's on
    _assert_restored(layers, originals)
    assert torch.equal(proj(), full_proj) and on_encoders() == [(), ()]
    assert all(torch.equal(a, b) for a, b in zip(_encode(service), plain, strict=True))
    assert (active.describe()["changes"], active.describe()["text_strength"]) == (["transformer"], 0.0)

    [active] = service.apply_loras(loaded, [(kohya, 0.0, 0.5)])  # the transformer's part off, the text part on
    assert proj() is plain_proj and active.describe()["changes"] == list(TEXT_ENCODERS)
    for name, m in layers.items():  # merged again at 0.5: the weights, not only the cached encoding
        assert torch.equal(m.weight, _expected(loras["kohya"], 0.5, originals[name], name)), name
    loaded.prompt_cache.clear()  # else the encoding cached at 0.5 above came back, whatever the encoders held
    assert all(torch.equal(a, b) for a, b in zip(_encode(service), half, strict=True))

    service.apply_loras(loaded, [(kohya, 0.7)])
    merged = {name: m.weight for name, m in layers.items()}
    for same in ((kohya, 0.7, None), (kohya, 0.7, 0.7)):  # "the same as strength", however it is said
        [active] = service.apply_loras(loaded, [same])
        assert all(m.weight is merged[name] for name, m in layers.items()) and "text_strength" not in active.describe()

    only = str(loras["transformer"])  # no CLIP/T5 part: a text strength changes nothing, not even the key
    service.apply_loras(loaded, [(only, 1.0)])
    only_proj = proj()
    [active] = service.apply_loras(loaded, [(only, 1.0, 0.3)])
    assert proj() is only_proj and "text_strength" not in active.describe()
    with pytest.raises(LoraError, match="both kohya.safetensors: text strength 5 is not possible"):
        service.apply_loras(loaded, [(kohya, 1.0, 5.0)])
    assert proj() is only_proj
    service.apply_loras(loaded, [])
    assert proj() is plain_proj
    _assert_restored(layers, originals)


def test_a_text_encoder_part_that_does_not_fit_is_refused_and_changes_nothing(service, loras, tmp_path):
    """Every key is checked against the real encoders before any model changes: a layer the demo's CLIP lacks, or
    one of another width, is refused by name, and the LoRA already on (transformer and encoders) stays as it was."""
    loaded = service.loaded
    service.apply_loras(loaded, [(str(loras["kohya"]), 1.0)])
    before = {name: m.weight for name, m in _layers(service).items()}
    transformer = {n: p for n, p in loaded.pipe.transformer.named_parameters()}
    layer5 = "lora_te1_text_model_encoder_layers_5_mlp_fc1"  # a CLIP-L name; the demo's CLIP has 2 layers
    wide = "lora_te1_text_model_encoder_layers_0_mlp_fc2"  # CLIP-L's 3072 inputs; the demo's fc2 has 256
    cases = {
        layer5: ({f"{layer5}.lora_down.weight": torch.zeros(4, 128), f"{layer5}.lora_up.weight": torch.zeros(256, 4)},
                 f"{layer5} targets text_model_encoder_layers_5_mlp_fc1, which the model's CLIP text encoder does "
                 "not have"),
        wide: ({f"{wide}.lora_down.weight": torch.zeros(4, 3072), f"{wide}.lora_up.weight": torch.zeros(128, 4)},
               f"{wide} expects 3072 inputs but encoder.layers.0.mlp.fc2 has 256"),
    }  # fmt: skip
    for i, (extra, words) in enumerate(cases.values()):
        bad = text_encoder_lora(tmp_path / f"bad {i}.safetensors", t5=False, seed=9, extra=extra)
        with pytest.raises(LoraError, match=words):
            service.apply_loras(loaded, [(str(loras["kohya"]), 1.0), (str(bad), 1.0)])
        assert all(m.weight is before[name] for name, m in _layers(service).items())
        assert all(p is transformer[n] for n, p in loaded.pipe.transformer.named_parameters())
    service.apply_loras(loaded, [])


def test_the_header_check_accepts_text_encoder_parts_and_names_keys_that_match_nothing(loras, tmp_path):
    """The torch-free check (the LoRA panel, ``--lora``) took no text-encoder part at all; a key under a text
    encoder's prefix that names no CLIP or T5 linear (SDXL's CLIP-G, an embedding) is still refused by name."""
    both = "transformer + CLIP text encoder + T5 text encoder"
    assert [check_lora_file(loras[n])[1].parts for n in ("kohya", "diffusers")] == [both, both]
    odd = "lora_te2_encoder_block_0_layer_0_SelfAttention_relative_attention_bias"
    extra = {f"{odd}.lora_down.weight": torch.zeros(4, 16), f"{odd}.lora_up.weight": torch.zeros(4, 4)}
    bad = text_encoder_lora(tmp_path / "odd.safetensors", extra=extra)
    with pytest.raises(LoraError, match=f"odd.safetensors: 1 text-encoder key\\(s\\) name no layer .*: {odd}$"):
        check_lora_file(bad)


def _demo_sized_transformer() -> nn.Module:
    """Only the transformer layer the test LoRAs name (``DEMO_PROJ``: 256 -> 256), bf16."""
    transformer = nn.Module()
    transformer.transformer_blocks = nn.ModuleList([nn.Module()])
    transformer.transformer_blocks[0].attn = nn.Module()
    transformer.transformer_blocks[0].attn.to_out = nn.ModuleList([nn.Linear(256, 256, dtype=torch.bfloat16)])
    return transformer


def _tiny_clip(nested: bool) -> nn.Module:
    """A CLIPTextModel of the demo's CLIP widths (128, MLP 256, 2 layers): its modules under ``text_model.`` as
    transformers 4 builds it when ``nested``, else at the top as transformers 5 does."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                            vocab_size=64, max_position_embeddings=8, bos_token_id=0, eos_token_id=1)  # fmt: skip
    model = CLIPTextModel(config).to(torch.bfloat16)
    if not nested:
        return model
    outer = nn.Module()
    outer.text_model = model
    return outer


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])  # fmt: skip
def test_text_encoder_originals_stay_in_system_memory_when_the_plan_moves_the_encoder(tmp_path, device):
    """A CLIP part merged while the encoder was on the GPU kept its originals there; when the memory plan later
    moved the encoder (``Module.to`` moves parameters only), they stayed behind, counted as the encoder's GPU
    bytes. They are kept in CPU memory, counted as system memory, and removal puts them back bit for bit on
    whichever device the encoder is on then. On a CPU-only machine the plan's move goes to "meta" (a device of
    its own, without values) and back."""
    lora = text_encoder_lora(tmp_path / "clip.safetensors", t5=False)
    clip = _tiny_clip(nested=False).to(device)
    layers = {n: clip.get_submodule(n) for n in DEMO_CLIP_LAYERS}
    before = {n: m.weight.detach().cpu().clone() for n, m in layers.items()}
    manager = LoraManager(_demo_sized_transformer().to(device), {"text_encoder": clip})
    manager.set([(str(lora), 1.0)])
    assert not any(torch.equal(m.weight.cpu(), before[n]) for n, m in layers.items())
    assert {t.device.type for t in held_originals(clip)} == {"cpu"}

    away = torch.device("meta" if device == "cpu" else "cpu")
    place_text_encoders(SimpleNamespace(text_encoder=clip), away, SimpleNamespace(text_encoders="gpu"))
    assert {p.device for p in clip.parameters()} == {away}
    assert {t.device.type for t in held_originals(clip)} == {"cpu"}
    size, held = encoder_size(clip), tensors_bytes(held_originals(clip))
    assert (size.total, size.in_ram) == (module_bytes(clip), held) and held > 0
    details = choose_policy(24 * 2**30, ModelSizes(2**30, (size,), 2**20)).details
    assert (details["text_encoders_gib"], details["text_encoders_in_ram_gib"]) == (size.total / 2**30, held / 2**30)

    if away.type == "meta":  # the plan moving it back: values come from the checkpoint, the LoRA'd from removal
        clip.to_empty(device="cpu")
    manager.set([])
    assert not held_originals(clip)
    for name, m in layers.items():
        assert m.weight.device == next(clip.parameters()).device and torch.equal(m.weight.cpu(), before[name]), name


@pytest.mark.parametrize("nested", [True, False], ids=["transformers-4-layout", "transformers-5-layout"])
def test_a_clip_part_applies_named_with_or_without_text_model_on_either_encoder_layout(tmp_path, nested):
    """transformers 4 nests CLIPTextModel's modules under ``text_model.``; a CLIP part saved without that level
    (diffusers' and kohya's names from transformers 5) passed the header check, then every job refused it on the
    nested encoder. Both spellings merge into the same layers, on both layouts."""
    clip = _tiny_clip(nested)
    prefix = "text_model." if nested else ""
    layers = [clip.get_submodule(prefix + n) for n in DEMO_CLIP_LAYERS]
    before = [m.weight for m in layers]
    manager = LoraManager(_demo_sized_transformer(), {"text_encoder": clip})
    merged = None
    for fmt, old, short in (("diffusers", "text_encoder.text_model.", "text_encoder."),
                            ("kohya", "lora_te1_text_model_", "lora_te1_")):  # fmt: skip
        full = text_encoder_lora(tmp_path / f"{fmt}.safetensors", fmt=fmt, t5=False)
        flat = rename_keys(full, tmp_path / f"{fmt} flat.safetensors", lambda k, o=old, n=short: k.replace(o, n))
        for path in (full, flat):
            manager.set([(str(path), 1.0)])
            assert all(m.weight is not w for m, w in zip(layers, before, strict=True)), path.name
            merged = merged or [m.weight.clone() for m in layers]
            assert all(torch.equal(m.weight, w) for m, w in zip(layers, merged, strict=True)), path.name
    manager.set([])
    assert all(m.weight is w for m, w in zip(layers, before, strict=True))
