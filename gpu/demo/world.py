"""Procedural shape world: seeded scene sampling, caption grammar and batched torch rendering.

A *scene* is one background (colour + texture) and one or two objects. Each object has a colour,
a shape, a size and one of five anchor positions. Objects always sit (with a little jitter) on an
anchor, so a judge can read the image cell by cell. Captions are produced by a small grammar that
names some or all of these attributes; attributes a caption leaves out are still sampled, so the
model learns to fill them in.

Everything is deterministic from a seed: ``sample_scenes(n, seed)`` draws scenes with a private
``torch.Generator`` and ``render(scenes, device)`` is a pure function of the scenes (texture phases
and jitters are stored in the scene), so the same seed gives the same pixels on CPU and GPU up to
float rounding.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

# Palette shared by objects and backgrounds; RGB in [0, 1]. Chosen to be far apart in RGB so that
# colour names stay unambiguous after VAE blur.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.98, 0.55, 0.08),
    "yellow": (0.97, 0.90, 0.15),
    "green": (0.15, 0.68, 0.22),
    "blue": (0.15, 0.30, 0.90),
    "purple": (0.55, 0.18, 0.70),
    "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.06),
}
COLOUR_NAMES: list[str] = list(COLOURS)
SHAPES: list[str] = ["circle", "square", "triangle", "star", "ring", "cross"]
SIZES: list[str] = ["small", "large"]
# Anchor centres in normalised image coordinates (x right, y down, both in [-1, 1]).
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (-0.5, -0.5),
    "top right": (0.5, -0.5),
    "bottom left": (-0.5, 0.5),
    "bottom right": (0.5, 0.5),
    "center": (0.0, 0.0),
}
POSITION_NAMES: list[str] = list(POSITIONS)
TEXTURES: list[str] = ["plain", "striped", "checkered", "dotted"]
# Radius in normalised units (image half-width = 1).
SIZE_RADIUS: dict[str, float] = {"small": 0.17, "large": 0.31}


@dataclass(frozen=True)
class WorldObject:
    """One object of a scene; ``jitter`` is (dx, dy, radius scale) applied at render time."""

    colour: str
    shape: str
    size: str
    position: str
    jitter: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Scene:
    """A scene plus which attributes its caption names (``named_*`` flags drive the grammar)."""

    objects: tuple[WorldObject, ...]
    background: str
    texture: str
    texture_phase: float = 0.0
    named_size: tuple[bool, ...] = field(default_factory=tuple)
    named_position: bool = False
    named_background: bool = False
    named_texture: bool = False

    def caption(self) -> str:
        """The scene's caption, e.g. ``"a small red star in the top left on a blue background"``."""
        parts = []
        for i, obj in enumerate(self.objects):
            words = ["a"]
            if self.named_size and self.named_size[i]:
                words.append(obj.size)
            words += [obj.colour, obj.shape]
            if self.named_position:
                words += ["in the", obj.position]
            parts.append(" ".join(words))
        text = " and ".join(parts)
        if self.named_background:
            tex = f"{self.texture} " if self.named_texture and self.texture != "plain" else ""
            text += f" on a {tex}{self.background} background"
        return text


def vocabulary() -> list[str]:
    """Every word the caption grammar can emit, in a fixed order (used to build the tokenizers)."""
    words = ["a", "and", "in", "the", "on", "background"]
    words += COLOUR_NAMES + SHAPES + SIZES + TEXTURES
    for pos in POSITION_NAMES:
        words += pos.split()
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)


def sample_scene(rng: random.Random) -> Scene:
    """Draw one scene from ``rng``; probabilities are chosen so every caption form is common."""
    n_obj = 1 if rng.random() < 0.6 else 2
    if n_obj == 1:
        positions = [rng.choice(POSITION_NAMES)]
    else:
        # Two objects use distinct corners so they never overlap (centre would touch large corners).
        positions = rng.sample(POSITION_NAMES[:4], 2)
    colours = rng.sample(COLOUR_NAMES, n_obj + 1)  # objects and background all differ in colour
    objs = []
    for i in range(n_obj):
        jitter = (rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06), rng.uniform(0.9, 1.1))
        objs.append(WorldObject(colours[i], rng.choice(SHAPES), rng.choice(SIZES), positions[i], jitter))
    texture = rng.choice(TEXTURES) if rng.random() < 0.5 else "plain"
    return Scene(
        objects=tuple(objs),
        background=colours[-1],
        texture=texture,
        texture_phase=rng.random(),
        named_size=tuple(rng.random() < 0.5 for _ in objs),
        named_position=rng.random() < 0.6,
        named_background=rng.random() < 0.6,
        named_texture=rng.random() < 0.5,
    )


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` scenes, deterministic in ``seed`` (uses Python's Mersenne Twister, not torch's RNG)."""
    rng = random.Random(seed)
    return [sample_scene(rng) for _ in range(n)]


def _shape_sdf(shape: str, px: torch.Tensor, py: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of ``shape`` of radius ``r`` centred at the origin.

    px, py: (B, H, W) float offsets from the object centre; r: (B, 1, 1). Returns (B, H, W).
    """
    if shape == "circle":
        return torch.sqrt(px * px + py * py) - r
    if shape == "square":
        return torch.maximum(px.abs(), py.abs()) - 0.82 * r
    if shape == "ring":
        return (torch.sqrt(px * px + py * py) - 0.72 * r).abs() - 0.28 * r
    if shape == "cross":
        w = 0.3 * r
        bar_h = torch.maximum(px.abs() - r, py.abs() - w)
        bar_v = torch.maximum(px.abs() - w, py.abs() - r)
        return torch.minimum(bar_h, bar_v)
    if shape == "triangle":
        # Upward equilateral triangle as the intersection of three half-planes (distance approximate).
        y0 = py - 0.25 * r
        s3 = math.sqrt(3.0) / 2.0
        d1 = y0 - 0.5 * r
        d2 = s3 * px - 0.5 * y0 - 0.5 * r
        d3 = -s3 * px - 0.5 * y0 - 0.5 * r
        return torch.maximum(torch.maximum(d1, d2), d3) * 1.2
    if shape == "star":
        # Five-point star in polar form: the boundary radius zig-zags between inner and outer radius.
        rho = torch.sqrt(px * px + py * py)
        theta = torch.atan2(px, -py)  # 0 at the top so one point faces up
        sector = 2.0 * math.pi / 5.0
        frac = torch.remainder(theta, sector) / sector  # 0..1 across one point
        tri = (2.0 * frac - 1.0).abs()  # 1 at the points, 0 between them
        boundary = r * (0.42 + 0.58 * tri * tri)  # squared ramp gives straight-ish, sharp points
        return (rho - boundary) * 0.8
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, xx: torch.Tensor, yy: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Texture pattern in [0, 1] (1 = darker stroke). xx, yy: (1, H, W); phase: (B, 1, 1) -> (B, H, W)."""
    if texture == "striped":
        v = torch.sin((xx + yy) * 4.0 * math.pi + phase * 2 * math.pi)
        return (v > 0.3).float().expand(phase.shape[0], -1, -1)
    if texture == "checkered":
        cx = torch.floor((xx + 1.0 + phase * 0.5) * 3.0)
        cy = torch.floor((yy + 1.0 + phase * 0.5) * 3.0)
        return torch.remainder(cx + cy, 2.0)
    if texture == "dotted":
        gx = torch.remainder((xx + 1.0 + phase * 0.25) * 4.0, 1.0) - 0.5
        gy = torch.remainder((yy + 1.0) * 4.0, 1.0) - 0.5
        return (gx * gx + gy * gy < 0.06).float()
    return torch.zeros(phase.shape[0], *xx.shape[1:], device=xx.device)


def render(scenes: list[Scene], size: int = 128, device: torch.device | str = "cpu") -> torch.Tensor:
    """Render scenes to images: returns float32 (B, 3, size, size) in [0, 1] on ``device``.

    Work is batched per (shape) and per (texture) so a batch of 512 scenes costs a few dozen kernels.
    Edges are anti-aliased by mapping the signed distance through a one-pixel ramp.
    """
    b = len(scenes)
    dev = torch.device(device)
    lin = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    xx, yy = xx[None], yy[None]
    pix = 2.0 / size
    palette = torch.tensor([COLOURS[c] for c in COLOUR_NAMES], device=dev)  # (8, 3)

    bg_idx = torch.tensor([COLOUR_NAMES.index(s.background) for s in scenes], device=dev)
    img = palette[bg_idx][:, :, None, None].expand(b, 3, size, size).clone()
    phase = torch.tensor([s.texture_phase for s in scenes], device=dev)[:, None, None]
    for tex in TEXTURES[1:]:
        rows = [i for i, s in enumerate(scenes) if s.texture == tex]
        if not rows:
            continue
        ridx = torch.tensor(rows, device=dev)
        pat = _texture(tex, xx, yy, phase[ridx])[:, None]  # (R, 1, H, W)
        base = img[ridx]
        # Strokes are the background colour mixed towards its complement-ish shade: visible but same hue.
        stroke = base * 0.6 + 0.4 * (1.0 - base) * 0.5
        img[ridx] = base * (1 - pat) + stroke * pat

    # Objects are drawn in list order; grouping by shape keeps the number of kernels small.
    max_obj = max(len(s.objects) for s in scenes)
    for slot in range(max_obj):
        for shape in SHAPES:
            rows = [
                i for i, s in enumerate(scenes) if len(s.objects) > slot and s.objects[slot].shape == shape
            ]
            if not rows:
                continue
            objs = [scenes[i].objects[slot] for i in rows]
            ridx = torch.tensor(rows, device=dev)
            cx = torch.tensor([POSITIONS[o.position][0] + o.jitter[0] for o in objs], device=dev)
            cy = torch.tensor([POSITIONS[o.position][1] + o.jitter[1] for o in objs], device=dev)
            rad = torch.tensor([SIZE_RADIUS[o.size] * o.jitter[2] for o in objs], device=dev)
            sdf = _shape_sdf(shape, xx - cx[:, None, None], yy - cy[:, None, None], rad[:, None, None])
            alpha = (0.5 - sdf / pix).clamp(0.0, 1.0)[:, None]  # (R, 1, H, W)
            col = palette[torch.tensor([COLOUR_NAMES.index(o.colour) for o in objs], device=dev)]
            img[ridx] = img[ridx] * (1 - alpha) + col[:, :, None, None] * alpha
    return img


def to_pil(images: torch.Tensor) -> list:
    """(B, 3, H, W) float in [0, 1] -> list of PIL RGB images."""
    from PIL import Image

    arr = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]
