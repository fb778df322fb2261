"""Recipe of the example LoRA shipped for the demo model: a "monochrome style" adapter.

The demo world rendered in greyscale (luma 0.299 R + 0.587 G + 0.114 B) is the training set; the frozen demo
transformer gets a rank-8 LoRA (peft) on its attention, MLP and modulation linears, trained with the same
rectified-flow objective as the base (``gpu.demo.train_transformer``). Half the captions start with the trigger
word "monochrome", so the adapter works with or without it. The result is saved with diffusers'
``save_lora_weights`` plus trigger words and this recipe in the header, and checked: mean colour saturation of
generated images at strength 1 vs 0.

    python -m gpu.demo.train_lora [--steps 600] [--out resources/loras/monochrome-style.safetensors]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gpu.demo.text import MAX_SEQUENCE_LENGTH
from gpu.demo.train_transformer import TextConditioner, pack, sample_t
from gpu.demo.train_vae import encode_latents
from gpu.demo.world import render, sample_scene

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "models" / "demo"
OUT = REPO / "resources" / "loras" / "monochrome-style.safetensors"
TRIGGER = "monochrome"
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
           "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "norm1.linear",
           "norm1_context.linear", "norm.linear"]  # fmt: skip


def greyscale(images: torch.Tensor) -> torch.Tensor:
    luma = images[:, 0] * 0.299 + images[:, 1] * 0.587 + images[:, 2] * 0.114
    return luma[:, None].expand_as(images).contiguous()


def saturation(images: list) -> float:
    """Mean per-pixel (max - min) over RGB of PIL images, in [0, 1]: 0 for greyscale."""
    import numpy as np

    x = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255 for im in images])
    return float((x.max(-1) - x.min(-1)).mean())


def train(steps: int, batch: int, rank: int, seed: int, pool: int, lr: float, device: torch.device) -> tuple:
    from diffusers import FluxPipeline
    from peft import LoraConfig

    torch.manual_seed(seed)
    pipe = FluxPipeline.from_pretrained(DEMO, torch_dtype=torch.float32, use_safetensors=True)
    tr, vae = pipe.transformer, pipe.vae
    text = TextConditioner(pipe.text_encoder, pipe.text_encoder_2, pipe.tokenizer, pipe.tokenizer_2).eval()
    rng = random.Random(seed)
    scenes = [sample_scene(rng) for _ in range(pool)]
    captions = [(f"{TRIGGER} " if i % 2 else "") + s.caption() for i, s in enumerate(scenes)]
    with torch.no_grad():
        lat = torch.cat([pack(encode_latents(vae, greyscale(render(scenes[i : i + 64]))))[0]
                         for i in range(0, pool, 64)])  # fmt: skip
        embeds, pooled = text(captions)
    img_ids = pack(torch.zeros(1, 16, 16, 16))[1].to(device)
    txt_ids = torch.zeros(MAX_SEQUENCE_LENGTH, 3, device=device)
    lat, embeds, pooled = lat.to(device), embeds.to(device), pooled.to(device)
    tr.to(device)
    tr.requires_grad_(False)
    cfg = LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, init_lora_weights=True)
    tr.add_adapter(cfg)
    params = [p for p in tr.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, pool, (batch,), generator=gen)
        x0 = lat[idx.to(device)]
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = sample_t(batch, torch.device("cpu"), gen).to(device)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        pred = tr(hidden_states=xt, encoder_hidden_states=embeds[idx.to(device)],
                  pooled_projections=pooled[idx.to(device)], timestep=t,
                  img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        loss = F.mse_loss(pred, noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    return pipe, cfg, time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool", type=int, default=2048)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    device = torch.device(args.device)
    pipe, cfg, seconds = train(args.steps, args.batch, args.rank, args.seed, args.pool, args.lr, device)
    pipe.to("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        FluxPipeline.save_lora_weights(tmp, transformer_lora_layers=get_peft_model_state_dict(pipe.transformer),
                                       transformer_lora_adapter_metadata=cfg.to_dict(), safe_serialization=True)
        saved = Path(tmp) / "pytorch_lora_weights.safetensors"
        with safe_open(str(saved), "pt") as f:
            meta = dict(f.metadata() or {})
        tensors = {k: v.contiguous() for k, v in load_file(saved).items()}
    meta.update({
        "modelspec.title": "Monochrome style (demo)", "modelspec.architecture": "flux-1-dev/lora",
        "modelspec.trigger_phrase": TRIGGER, "nibble.base_model": "demo",
        "nibble.recipe": f"python -m gpu.demo.train_lora --steps {args.steps} --batch {args.batch} --rank "
                         f"{args.rank} --seed {args.seed} --pool {args.pool} --lr {args.lr}",
        "nibble.train_seconds": f"{seconds:.0f}",
    })  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {seconds:.0f} s of training)")

    # Check on the stock pipeline (diffusers' own loader): saturation with the LoRA at 1 vs 0.
    pipe.transformer.delete_adapters(pipe.transformer.active_adapters()) if hasattr(pipe.transformer,
                                                                                   "delete_adapters") else None
    check = evaluate_effect(args.out)
    args.out.with_suffix(".json").write_text(json.dumps(check, indent=1))
    print(json.dumps(check))


def evaluate_effect(lora: Path, n: int = 8) -> dict:
    """Mean saturation of demo images (held-out-style prompts, fixed seeds) at strength 0, 0.5 and 1, through
    our engine (``GenerationService`` on the 16-bit demo model)."""
    from gpu.demo.evaluate import heldout_set
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    prompts, seeds = heldout_set(n)
    service = GenerationService(device=torch.device("cpu"))
    out = {}
    for strength in (0.0, 0.5, 1.0):
        images = [service.generate(GenerationRequest(prompt=pr, model=str(DEMO), seed=s,
                                                     loras=[(str(lora), strength)]))[0].image
                  for pr, s in zip(prompts, seeds, strict=True)]  # fmt: skip
        out[f"saturation_at_{strength:g}"] = round(saturation(images), 4)
    return out


if __name__ == "__main__":
    main()
