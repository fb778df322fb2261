"""The LoRAs of images made by other programs: A1111/Forge's <lora:…> tags and ``Lora hashes``, ComfyUI's LoRA
nodes on the model's path. They were not read at all: a dropped image restored its prompt with the tags in it (no
words for the text encoders) and the LoRA panel as it was."""

from __future__ import annotations

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.comfyui_graph import read_graph, workflow_settings
from gpu.generation.png_metadata import inspect_png_file, read_parameters


def _ref(name: str, strength: float, text: float | None = None, digest: str | None = None) -> dict:
    return {"name": name, "strength": strength, "text_strength": text, "hash": digest}


def test_a1111_tags_are_cut_from_the_prompt_and_read_with_their_hashes():
    text = ('photo of a cat, <lora:Ink_Style:0.8>, in snow <LYCO:detail:0.5:0.9>\n'
            'Negative prompt: blurry <lora:neg:1>\n'
            'Steps: 20, Seed: 3, Lora hashes: "Ink_Style: 0123456789AB, detail: abcdefabcdef, '
            'only_hashed: 00ff00ff00ff"')  # fmt: skip
    settings, problems = read_parameters(text)
    assert settings["prompt"] == "photo of a cat, in snow"
    assert settings["negative_prompt"] == "blurry <lora:neg:1>"  # A1111 reads no LoRA from the negative prompt
    assert settings["lora_refs"] == [
        _ref("Ink_Style", 0.8, None, "0123456789ab"),  # one value: text encoders and UNet alike
        _ref("detail", 0.9, 0.5, "abcdefabcdef"),  # A1111: the first value is the text encoders', the second the UNet's
        _ref("only_hashed", 1.0, None, "00ff00ff00ff"),
    ]
    assert problems == ["its Lora hashes name the LoRA 'only_hashed' without a <lora:only_hashed:…> tag in the "
                        "prompt: its strength is not known and is read as 1"]  # fmt: skip
    named, _ = read_parameters("<lora:a>, <lora:b:unet=0.3:te=0.7:dyn=4> a dog, <lora:c:0.2>, <lora:d>\nSteps: 4")
    assert named["prompt"] == "a dog"
    assert named["lora_refs"] == [_ref("a", 1.0), _ref("b", 0.3, 0.7), _ref("c", 0.2), _ref("d", 1.0)]
    kept, _ = read_parameters("masterpiece, a cat <lora:a:1>, snow,\n\n(glow:1.2) <lora:b:1>\nSteps: 4")
    assert kept["prompt"] == "masterpiece, a cat, snow,\n\n(glow:1.2)"  # others' words, commas and lines stay
    plain, _ = read_parameters("a dog, no LoRA\nSteps: 4")
    assert plain["prompt"] == "a dog, no LoRA" and plain["lora_refs"] == []  # none used: switched off on restore


def test_hostile_a1111_lora_values_are_named_never_raised():
    text = ("a cat <lora:x:abc>, <lora::1> in <lora:y:1e309> snow <lora:z:0.5:nan>\n"
            'Steps: 4, Lora hashes: "x: not-hex, : 0123456789ab, garbage"')  # fmt: skip
    settings, problems = read_parameters(text)
    assert settings["prompt"] == "a cat, in snow"
    assert settings["lora_refs"] == [_ref("x", 1.0), _ref("y", 1.0), _ref("z", 0.5)]
    assert problems == [
        "its LoRA tag '<lora:x:abc>' has a strength that is no number ('abc'): read as 1",
        "its LoRA tag '<lora::1>' names no LoRA: it was left out",
        "its LoRA tag '<lora:y:1e309>' has a strength that is no number ('1e309'): read as 1",
        "its LoRA tag '<lora:z:0.5:nan>' has a UNet strength that is no number ('nan'): read as 0.5",
        "its Lora hashes entry 'x: not-hex' is no 'name: hash' pair: it was left out",
        "its Lora hashes entry ': 0123456789ab' is no 'name: hash' pair: it was left out",
        "its Lora hashes entry 'garbage' is no 'name: hash' pair: it was left out",
    ]


def _lora_graph(*loras: tuple[str, str, dict]) -> dict:
    """A FLUX graph whose sampler's model comes through ``loras`` ((id, class, inputs) from the sampler back to
    the loader, each fed by the next); its CLIP straight from the loader."""
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 0]}},
        "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 1.0, "positive": ["6", 0],
              "latent_image": ["9", 0], "model": [loras[0][0] if loras else "1", 0]}},
    }  # fmt: skip
    for (node, kind, inputs), below in zip(loras, [*(n for n, _, _ in loras[1:]), "1"], strict=False):
        graph[node] = {"class_type": kind, "inputs": {**inputs, "model": [below, 0]}}
    return graph


def test_comfyui_lora_nodes_on_the_model_path_are_read_in_the_order_applied():
    graph = _lora_graph(
        ("12", "LoraLoaderModelOnly", {"lora_name": "detail.safetensors", "strength_model": 0.6}),
        ("11", "ModelSamplingFlux", {"max_shift": 1.15}),  # passes the model on
        ("10", "LoraLoader", {"lora_name": "styles\\Ink_Style.safetensors", "strength_model": ["20", 0],
                              "strength_clip": 0.4, "clip": ["2", 0]}),
    )  # fmt: skip
    graph["20"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 0.9}}
    graph["30"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "unused.safetensors", "model": ["1", 0]}}
    settings, problems = read_graph(graph)
    assert settings["lora_refs"] == [_ref("Ink_Style", 0.9, 0.4), _ref("detail", 0.6, 0.0)] and problems == []
    assert read_graph(_lora_graph())[0]["lora_refs"] == []  # the model straight from its loader: none used
    broken = _lora_graph(("10", "LoraLoader", {"lora_name": "a.safetensors", "strength_model": 1}))
    broken["10"]["inputs"]["model"] = ["99", 0]  # a link to no node: whether more LoRAs were used is not known
    assert read_graph(broken)[0]["lora_refs"] == [_ref("a", 1.0)]
    custom = _lora_graph(("10", "Power Lora Loader (rgthree)", {"lora_1": {"on": True}}))
    settings, problems = read_graph(custom)
    assert "lora_refs" not in settings  # none read is not "none used": the panel is left as it is
    assert problems == ["its ComfyUI graph applies LoRAs with a node this app does not read (Power Lora Loader "
                        "(rgthree), node 10): those LoRAs are not restored"]  # fmt: skip


def test_hostile_comfyui_lora_values_are_named_never_raised(tmp_path):
    graph = _lora_graph(
        ("10", "LoraLoader", {"lora_name": "a.safetensors", "strength_model": "strong", "strength_clip": True}),
        ("11", "LoraLoader", {"lora_name": ["", 0], "strength_model": 1.0}),
        ("12", "LoraLoaderModelOnly", {"lora_name": 5, "strength_model": 1.0}),
        ("13", "LoraLoaderModelOnly", {"lora_name": "b.safetensors", "strength_model": 1e309}),
    )  # fmt: skip
    graph[""] = {"class_type": "PrimitiveString", "inputs": {"value": 3}}
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph).replace("Infinity", "1e309"))  # JSON reads 1e309 as infinity
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    with open(tmp_path / "comfy.png", "rb") as f:
        found = inspect_png_file(f)
    assert found.settings["lora_refs"] == [_ref("b", 1.0, 0.0), _ref("a", 1.0)]
    assert found.problems == [
        "its ComfyUI LoraLoader node 10 ('a') has a strength_model that is no number (strong): read as 1 and has a "
        "strength_clip that is no number (True): read as 1",
        "its ComfyUI LoraLoader node 11 names no LoRA file (\"['', 0]\"): it was left out",
        "its ComfyUI LoraLoaderModelOnly node 12 names no LoRA file ('5'): it was left out",
        "its ComfyUI LoraLoaderModelOnly node 13 ('b') has a strength_model that is no number (inf): read as 1",
    ]


def _in(name: str, link: int | None, kind: str) -> dict:
    return {"name": name, "type": kind, "link": link}


def test_a_workflow_passes_the_model_through_a_bypassed_lora_and_skips_it():
    """ComfyUI's editor hands a bypassed node's input on as its output of the same type: the LoRA did not run.
    Read as a node that did not run, the sampler's model came from nowhere and no LoRA was read."""
    nodes = [
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["flux.safetensors"],
         "outputs": [{"type": "MODEL"}, {"type": "CLIP"}]},
        {"id": 10, "type": "LoraLoader", "inputs": [_in("model", 1, "MODEL"), _in("clip", 2, "CLIP")],
         "outputs": [{"type": "MODEL"}, {"type": "CLIP"}], "widgets_values": ["ink.safetensors", 0.7, 0.5]},
        {"id": 11, "type": "LoraLoader", "mode": 4, "inputs": [_in("model", 3, "MODEL"), _in("clip", 4, "CLIP")],
         "outputs": [{"type": "MODEL"}, {"type": "CLIP"}], "widgets_values": ["bypassed.safetensors", 1, 1]},
        {"id": 12, "type": "LoraLoaderModelOnly", "inputs": [_in("model", 5, "MODEL")],
         "outputs": [{"type": "MODEL"}], "widgets_values": ["detail.safetensors", 1.2]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [_in("clip", 6, "CLIP")], "widgets_values": ["a fox"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 512, 1]},
        {"id": 3, "type": "KSampler", "inputs": [_in("model", 7, "MODEL"), _in("positive", 8, "CONDITIONING"),
         _in("latent_image", 9, "LATENT")], "widgets_values": [1, "fixed", 4, 1.0, "euler", "simple", 1]},
    ]  # fmt: skip
    links = [[1, 4, 0, 10, 0, "MODEL"], [2, 4, 1, 10, 1, "CLIP"], [3, 10, 0, 11, 0, "MODEL"],
             [4, 10, 1, 11, 1, "CLIP"], [5, 11, 0, 12, 0, "MODEL"], [6, 11, 1, 6, 0, "CLIP"],
             [7, 12, 0, 3, 0, "MODEL"], [8, 6, 0, 3, 1, "CONDITIONING"], [9, 5, 0, 3, 2, "LATENT"]]  # fmt: skip
    settings, problems = workflow_settings({"nodes": nodes, "links": links})
    assert settings["lora_refs"] == [_ref("ink", 0.7, 0.5), _ref("detail", 1.2, 0.0)] and problems == []
    assert settings["prompt"] == "a fox"  # the CLIP through the bypassed node too
