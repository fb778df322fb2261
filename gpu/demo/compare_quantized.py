"""Quality of the shipped demo model's quantized variants against its 16-bit original.

Generates the held-out prompts with the 16-bit folder, the SVDQuant INT4 file and a naive W4A4 file (same
seeds, same defaults), reports judge attribute accuracy for each and PSNR/SSIM of the quantized images
against the 16-bit ones, and draws a prompts x (BF16, INT4 SVDQuant, naive W4A4) grid.

    python -m gpu.demo.compare_quantized --n 256 --report gpu/demo/quantized_eval.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gpu.demo.evaluate import DEFAULT_MODEL, evaluate, heldout_set, image_grid, pipeline_generate_fn
from gpu.generation.pipeline_loader import load_pipeline
from gpu.library import ModelLibrary
from gpu.metrics import psnr, ssim
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model

GRID_ROWS = 6


def ensure_quantized(path: Path, method: str, calib_prompts: int) -> Path:
    """Quantize the demo folder with ``method`` (INT4, rank 32) unless ``path`` already exists."""
    if not path.is_file():
        cfg = QuantizeConfig(method=method, precision="int4", rank=32, calib_prompts=calib_prompts)
        quantize_model(DEFAULT_MODEL, path, cfg, library=ModelLibrary())
    return path


def compare(n: int, int4: Path, naive: Path, device: torch.device) -> tuple[dict, object]:
    prompts, seeds = heldout_set(n)
    library = ModelLibrary()
    report: dict = {"prompts": n, "device": str(device), "date": time.strftime("%Y-%m-%d")}
    images = {}
    for label, target in (("bf16", DEFAULT_MODEL), ("svdquant_int4", int4), ("naive_w4a4", naive)):
        entry = library.resolve(str(target))
        loaded = load_pipeline(entry, library, device)
        started = time.perf_counter()
        res = evaluate(pipeline_generate_fn(loaded.pipe), prompts, seeds, return_images=True)
        images[label] = res.pop("images")
        res["seconds"] = round(time.perf_counter() - started, 1)
        report[label] = res
    for label in ("svdquant_int4", "naive_w4a4"):
        report[label]["psnr_vs_bf16"] = psnr(images[label], images["bf16"])
        report[label]["ssim_vs_bf16"] = ssim(images[label], images["bf16"])
    rows = [[images[k][i] for k in ("bf16", "svdquant_int4", "naive_w4a4")] for i in range(min(GRID_ROWS, n))]
    report["grid_prompts"] = prompts[:GRID_ROWS]
    return report, image_grid(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--calib-prompts", type=int, default=128)
    ap.add_argument("--int4", type=Path, default=resources_dir() / "models" / "demo-int4.safetensors")
    ap.add_argument("--naive", type=Path, default=Path("/tmp/demo-naive-w4a4.safetensors"))
    ap.add_argument("--report", type=Path, default=Path(__file__).with_name("quantized_eval.json"))
    ap.add_argument("--grid", type=Path, default=resources_dir() / "screenshots" / "demo-quantized-grid.png")
    args = ap.parse_args()
    ensure_quantized(args.int4, "svdquant", args.calib_prompts)
    ensure_quantized(args.naive, "naive", args.calib_prompts)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report, grid = compare(args.n, args.int4, args.naive, device)
    args.report.write_text(json.dumps(report, indent=1))
    grid.save(args.grid)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
