"""Automatic judge: a small CNN trained on the world that reads what an image shows.

The world puts every object on one of five anchors, so the judge reads the image cell by cell:
for each anchor it predicts whether an object is there and, if so, its colour, shape and size; it
also predicts the background colour. ``judge_images(images, captions)`` parses each caption with the
world's grammar and scores the attributes the caption names:

* each named object is matched to a detected object (an occupied cell); with two named objects the
  assignment maximising the number of matching attributes is used (set matching, order-free);
* an object's colour / shape / size (if named) / position (if named) is correct when the matched
  cell shows it; an object with no detected cell left to match gets all its attributes wrong;
* the background colour (if named) is correct when the judge's background prediction equals it.

*Attribute accuracy* = correct named attributes / all named attributes (micro-average over prompts).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gpu.demo.world import COLOUR_NAMES, POSITION_NAMES, SHAPES, SIZES, Scene, render, sample_scene

N_CELLS = len(POSITION_NAMES)
N_COL, N_SHAPE, N_SIZE = len(COLOUR_NAMES), len(SHAPES), len(SIZES)
PER_CELL = 1 + N_COL + N_SHAPE + N_SIZE  # presence logit + class logits


class Judge(nn.Module):
    """CNN: (B, 3, 128, 128) float in [0, 1] -> logits (B, N_CELLS * PER_CELL + N_COL)."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.GroupNorm(8, cout),
                nn.SiLU(),
            ]
        self.features = nn.Sequential(*layers)  # 128 -> 4x4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * 4 * 16, 512),
            nn.SiLU(),
            nn.Linear(512, N_CELLS * PER_CELL + N_COL),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1))

    def split(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits -> presence (B, 5), colour (B, 5, 8), shape (B, 5, 6), size (B, 5, 2), background (B, 8)."""
        b = logits.shape[0]
        cells = logits[:, : N_CELLS * PER_CELL].view(b, N_CELLS, PER_CELL)
        return {
            "presence": cells[..., 0],
            "colour": cells[..., 1 : 1 + N_COL],
            "shape": cells[..., 1 + N_COL : 1 + N_COL + N_SHAPE],
            "size": cells[..., 1 + N_COL + N_SHAPE :],
            "background": logits[:, N_CELLS * PER_CELL :],
        }


def scene_targets(scenes: list[Scene], device: torch.device) -> dict[str, torch.Tensor]:
    """Integer targets matching ``Judge.split``; absent cells get class -1 (ignored by the loss)."""
    b = len(scenes)
    pres = torch.zeros(b, N_CELLS)
    col = torch.full((b, N_CELLS), -1, dtype=torch.long)
    shp, siz = col.clone(), col.clone()
    for i, s in enumerate(scenes):
        for o in s.objects:
            c = POSITION_NAMES.index(o.position)
            pres[i, c] = 1
            col[i, c], shp[i, c], siz[i, c] = (
                COLOUR_NAMES.index(o.colour),
                SHAPES.index(o.shape),
                SIZES.index(o.size),
            )
    bg = torch.tensor([COLOUR_NAMES.index(s.background) for s in scenes])
    out = {"presence": pres, "colour": col, "shape": shp, "size": siz, "background": bg}
    return {k: v.to(device) for k, v in out.items()}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur, noise, slight colour jitter so the judge tolerates VAE/diffusion artefacts. (B,3,H,W)."""
    b = x.shape[0]
    dev = x.device
    # Per-image Gaussian blur with sigma in [0, 1.5] px (separable, 7 taps).
    sigma = torch.rand(b, device=dev, generator=gen) * 1.5 + 1e-3
    taps = torch.arange(-3, 4, device=dev, dtype=x.dtype)
    k = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 7)
    xc = x.reshape(1, b * 3, *x.shape[2:])
    kk = k.repeat_interleave(3, 0)
    xc = F.conv2d(F.pad(xc, (3, 3, 0, 0), mode="replicate"), kk[:, None, None, :], groups=b * 3)
    xc = F.conv2d(F.pad(xc, (0, 0, 3, 3), mode="replicate"), kk[:, None, :, None], groups=b * 3)
    x = xc.view_as(x)
    gain = 1 + 0.08 * (torch.rand(b, 3, 1, 1, device=dev, generator=gen) - 0.5)
    noise = torch.randn(x.shape, device=dev, generator=gen) * (
        torch.rand(b, 1, 1, 1, device=dev, generator=gen) * 0.05
    )
    return (x * gain + noise).clamp(0, 1)


def judge_loss(judge: Judge, logits: torch.Tensor, tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of presence BCE and masked cross-entropies for the class heads."""
    out = judge.split(logits.float())
    loss = F.binary_cross_entropy_with_logits(out["presence"], tgt["presence"])
    for k in ("colour", "shape", "size"):
        loss = loss + F.cross_entropy(out[k].flatten(0, 1), tgt[k].flatten(), ignore_index=-1)
    return loss + F.cross_entropy(out["background"], tgt["background"])


def train_judge(seed: int, steps: int, batch: int, device: torch.device, lr: float = 2e-3) -> Judge:
    """Train a judge from scratch on augmented world renders; returns it in eval mode."""
    rng = random.Random(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    judge = Judge().to(device).train()
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        scenes = [sample_scene(rng) for _ in range(batch)]
        x = augment(render(scenes, device=device), gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = judge(x)
        loss = judge_loss(judge, logits, scene_targets(scenes, device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"judge step {step} loss {loss.item():.4f} t {time.time() - t0:.0f}s", flush=True)
    return judge.eval()


def save_judge(judge: Judge, folder: str | Path) -> None:
    """Write ``judge.safetensors`` (fp16) and ``config.json`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in judge.state_dict().items()}
    save_file(sd, str(folder / "judge.safetensors"))
    cfg = {
        "width": judge.head[1].in_features // 64,
        "colours": COLOUR_NAMES,
        "shapes": SHAPES,
        "sizes": SIZES,
        "positions": POSITION_NAMES,
        "image_size": 128,
    }
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))


def load_judge(folder: str | Path, device: torch.device | str = "cpu") -> Judge:
    """Load a judge saved by ``save_judge`` (float32, eval mode)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    judge = Judge(width=cfg["width"])
    judge.load_state_dict({k: v.float() for k, v in load_file(str(folder / "judge.safetensors")).items()})
    return judge.to(device).eval()


_OBJ_RE = re.compile(
    r"^a (?:(?P<size>small|large) )?(?P<colour>\w+) (?P<shape>\w+)(?: in the (?P<position>top left|top right|"
    r"bottom left|bottom right|center))?$"
)


def parse_caption(caption: str) -> dict:
    """Parse a world caption into {"objects": [{colour, shape, size|None, position|None}], "background"}."""
    text = caption.strip().lower()
    background = None
    m = re.search(r" on a (?:(?:plain|striped|checkered|dotted) )?(\w+) background$", text)
    if m:
        background, text = m.group(1), text[: m.start()]
    objects = []
    for part in text.split(" and "):
        om = _OBJ_RE.match(part.strip())
        if om is None:
            raise ValueError(f"caption outside the world grammar: {caption!r}")
        objects.append({k: om.group(k) for k in ("colour", "shape", "size", "position")})
    return {"objects": objects, "background": background}


@torch.no_grad()
def read_images(judge: Judge, images: torch.Tensor) -> list[dict]:
    """(B, 3, 128, 128) float in [0, 1] -> per image {"cells": {pos: (colour, shape, size)}, "background"}."""
    dev = next(judge.parameters()).device
    out = judge.split(judge(images.to(dev, torch.float32)).float())
    res = []
    for i in range(images.shape[0]):
        cells = {}
        for c, pos in enumerate(POSITION_NAMES):
            if out["presence"][i, c] > 0:
                cells[pos] = (
                    COLOUR_NAMES[out["colour"][i, c].argmax()],
                    SHAPES[out["shape"][i, c].argmax()],
                    SIZES[out["size"][i, c].argmax()],
                )
        res.append({"cells": cells, "background": COLOUR_NAMES[out["background"][i].argmax()]})
    return res


def score_caption(parsed: dict, seen: dict) -> dict[str, list[bool]]:
    """Per named attribute, whether the judge's reading ``seen`` shows it (see module docstring)."""
    cells = list(seen["cells"].items())
    best: dict[str, list[bool]] | None = None
    best_n = -1
    n = len(parsed["objects"])
    # Candidate assignments: ordered choices of distinct detected cells, padded with None (missing).
    options = list(itertools.permutations(cells + [None] * n, n))
    for choice in options:
        res: dict[str, list[bool]] = {"colour": [], "shape": [], "size": [], "position": []}
        for obj, cell in zip(parsed["objects"], choice, strict=True):
            pos, attrs = cell if cell is not None else (None, (None, None, None))
            res["colour"].append(attrs[0] == obj["colour"])
            res["shape"].append(attrs[1] == obj["shape"])
            if obj["size"] is not None:
                res["size"].append(attrs[2] == obj["size"])
            if obj["position"] is not None:
                res["position"].append(pos == obj["position"])
        n_ok = sum(sum(v) for v in res.values())
        if n_ok > best_n:
            best, best_n = res, n_ok
    assert best is not None
    best["background"] = [seen["background"] == parsed["background"]] if parsed["background"] else []
    best["count"] = [len(cells) == n]  # reported separately, not part of attribute accuracy
    return best


def to_tensor(images: list) -> torch.Tensor:
    """PIL images (any size) -> (B, 3, 128, 128) float32 in [0, 1]."""
    import numpy as np

    arr = [np.asarray(im.convert("RGB").resize((128, 128)), dtype=np.float32) / 255.0 for im in images]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).contiguous()


def judge_images(
    judge: Judge, images: list | torch.Tensor, captions: list[str]
) -> list[dict[str, list[bool]]]:
    """Score images against captions: per caption, attribute -> list of correctness flags.

    images: PIL images or a (B, 3, 128, 128) float tensor in [0, 1]. Keys: colour, shape, size,
    position, background (attribute accuracy uses these) and count (was the number of objects right).
    """
    x = images if isinstance(images, torch.Tensor) else to_tensor(images)
    seen = read_images(judge, x)
    return [score_caption(parse_caption(c), s) for c, s in zip(captions, seen, strict=True)]


ATTRIBUTES = ("colour", "shape", "size", "position", "background")


def accuracy(scores: list[dict[str, list[bool]]]) -> dict[str, float]:
    """Aggregate ``judge_images`` output: per-attribute accuracies, ``attribute_accuracy``, ``count``."""
    res: dict[str, float] = {}
    tot_ok = tot_n = 0
    for a in ATTRIBUTES + ("count",):
        flags = [f for s in scores for f in s[a]]
        res[a] = sum(flags) / len(flags) if flags else float("nan")
        if a != "count":
            tot_ok, tot_n = tot_ok + sum(flags), tot_n + len(flags)
    res["attribute_accuracy"] = tot_ok / max(1, tot_n)
    res["n_attributes"] = tot_n
    res["n_prompts"] = len(scores)
    return res


def render_accuracy(judge: Judge, n: int, seed: int, device: torch.device | str = "cpu") -> dict[str, float]:
    """Judge accuracy on ``n`` clean world renders against their own captions (sanity upper bound)."""
    from gpu.demo.world import sample_scenes

    scenes = sample_scenes(n, seed)
    imgs = render(scenes, device=device)
    return accuracy(judge_images(judge, imgs, [s.caption() for s in scenes]))
