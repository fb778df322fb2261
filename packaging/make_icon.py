"""Draw the Nibble Studio icon with PIL: resources/icons/nibble-studio.{png,ico} (256 px PNG, multi-size ICO).

    python packaging/make_icon.py

The icon is committed; rerun this only to change it. A rounded dark tile with a 4x4 grid of "nibbles"
(4-bit cells) in a warm gradient, one of them bitten off."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "resources" / "icons"


def draw(size: int = 256) -> Image.Image:
    scale = 4  # draw large, downsample: smooth edges without antialiasing primitives
    s = size * scale
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, s - 1, s - 1], radius=s // 5, fill=(30, 34, 48, 255))
    pad, gap, n = s * 0.16, s * 0.045, 4
    cell = (s - 2 * pad - (n - 1) * gap) / n
    for r in range(n):
        for c in range(n):
            t = (r + c) / (2 * n - 2)
            colour = (int(255 - 40 * t), int(170 - 110 * t), int(60 + 140 * t), 255)
            x0, y0 = pad + c * (cell + gap), pad + r * (cell + gap)
            d.rounded_rectangle([x0, y0, x0 + cell, y0 + cell], radius=cell * 0.22, fill=colour)
    # the bite: a circle of background colour taken out of the top-right cell
    bx, by, br = pad + 3 * (cell + gap) + cell, pad, cell * 0.55
    d.ellipse([bx - br, by - br, bx + br, by + br], fill=(30, 34, 48, 255))
    return img.resize((size, size), Image.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon = draw(256)
    icon.save(OUT / "nibble-studio.png")
    icon.save(OUT / "nibble-studio.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128),
                                                (256, 256)])
    print(f"wrote {OUT / 'nibble-studio.png'} and {OUT / 'nibble-studio.ico'}")


if __name__ == "__main__":
    main()
