"""Evaluation harness: fixed held-out prompts and judge-based attribute accuracy (PSNR/SSIM: gpu.metrics).

Usage from Python::

    from gpu.demo.evaluate import evaluate, heldout_set, pipeline_generate_fn
    prompts, seeds = heldout_set()                      # 256 prompts, seeds 1000..1255
    acc = evaluate(pipeline_generate_fn(pipe), prompts, seeds)

``generate_fn(prompts, seeds) -> list[PIL.Image]`` is any generator (BF16 pipeline, SVDQ INT4, naive
W4A4...). From the shell: ``python -m gpu.demo.evaluate --model resources/models/demo [--n 256]``.
Attribute accuracy is defined in ``gpu/demo/judge.py`` (named attributes the judge sees / named attributes).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpu.demo.judge import Judge, accuracy, judge_images, load_judge
from gpu.demo.world import sample_scenes

if TYPE_CHECKING:
    from diffusers import FluxPipeline

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "resources" / "models" / "demo"
DEFAULT_JUDGE = REPO / "resources" / "judge"
HELDOUT_SEED = 20261121  # scene seed of the held-out prompt list; never used for training or calibration
CALIBRATION_SEED = 777
GEN_SEED_BASE = 1000  # image i of the held-out set is generated with seed GEN_SEED_BASE + i

GenerateFn = Callable[[list[str], list[int]], list]


def heldout_set(n: int = 256) -> tuple[list[str], list[int]]:
    """The fixed held-out prompts and their generation seeds (first ``n`` of a fixed list)."""
    prompts = [s.caption() for s in sample_scenes(n, HELDOUT_SEED)]
    return prompts, [GEN_SEED_BASE + i for i in range(n)]


def calibration_prompts(n: int = 256) -> list[str]:
    """Distinct world captions for quantisation calibration, disjoint from the held-out set."""
    held = set(heldout_set(1024)[0])
    out: list[str] = []
    for s in sample_scenes(4 * n, CALIBRATION_SEED):
        c = s.caption()
        if c not in held and c not in out:
            out.append(c)
        if len(out) == n:
            break
    return out


def pipeline_generate_fn(
    pipe: FluxPipeline,
    steps: int | None = None,
    guidance: float | None = None,
    batch: int = 16,
    model_dir: str | Path = DEFAULT_MODEL,
) -> GenerateFn:
    """Wrap a diffusers FluxPipeline as a ``GenerateFn`` using the defaults in ``nibble.json``.

    Each image gets its own ``torch.Generator`` seeded with its seed, so results do not depend on batching.
    """
    cfg = json.loads((Path(model_dir) / "nibble.json").read_text())
    steps = steps or cfg["steps"]
    guidance = guidance if guidance is not None else cfg["guidance"]

    def gen(prompts: list[str], seeds: list[int]) -> list:
        out = []
        for i in range(0, len(prompts), batch):
            p, s = prompts[i : i + batch], seeds[i : i + batch]
            gens = [torch.Generator("cpu").manual_seed(x) for x in s]
            out += pipe(
                prompt=p,
                negative_prompt=[""] * len(p),
                true_cfg_scale=guidance,
                num_inference_steps=steps,
                height=cfg["height"],
                width=cfg["width"],
                max_sequence_length=cfg["max_sequence_length"],
                generator=gens,
            ).images
        return out

    return gen


def evaluate(
    generate_fn: GenerateFn,
    prompts: list[str],
    seeds: list[int] | None = None,
    judge: Judge | None = None,
    return_images: bool = False,
) -> dict:
    """Generate one image per prompt and return the judge's accuracy dict (see ``judge.accuracy``).

    Keys: attribute_accuracy (headline), colour, shape, size, position, background, count, n_prompts,
    n_attributes, seconds. With ``return_images`` the PIL images are added under "images".
    """
    if seeds is None:
        seeds = [GEN_SEED_BASE + i for i in range(len(prompts))]
    judge = judge or load_judge(DEFAULT_JUDGE)
    t0 = time.time()
    images = generate_fn(prompts, seeds)
    res = accuracy(judge_images(judge, images, prompts))
    res["seconds"] = time.time() - t0
    if return_images:
        res["images"] = images
    return res


def image_grid(rows: list[list], pad: int = 2) -> Image.Image:  # noqa: F821
    """Grid of PIL images (rows x cols), white padding between cells."""
    from PIL import Image

    w, h = rows[0][0].size
    grid = Image.new("RGB", (len(rows[0]) * (w + pad) + pad, len(rows) * (h + pad) + pad), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Judge-based attribute accuracy of the demo model on held-out prompts"
    )
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--judge", default=str(DEFAULT_JUDGE))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bfloat16" if torch.cuda.is_available() else "float32")
    args = ap.parse_args()
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(args.model, torch_dtype=getattr(torch, args.dtype), use_safetensors=True).to(
        args.device
    )
    pipe.set_progress_bar_config(disable=True)
    prompts, seeds = heldout_set(args.n)
    res = evaluate(
        pipeline_generate_fn(pipe, args.steps, args.guidance, model_dir=args.model),
        prompts,
        seeds,
        judge=load_judge(args.judge, args.device),
    )
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
