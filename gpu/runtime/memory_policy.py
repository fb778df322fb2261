"""Where the pipeline's parts live on this machine: the memory policy, chosen from the detected VRAM.

A FLUX.1 pipeline is three very different weights: the transformer (runs every step), the text encoders
(T5-XXL is 8.9 GiB in 16 bits and runs once per prompt) and the VAE (small weights, large activations at
decode). On a GPU that holds everything, everything stays resident. On a 16 GB laptop the 4-bit transformer
stays on the GPU while the text encoders only *visit* it to encode the prompt (one at a time, and one block
at a time when a whole encoder does not fit next to the transformer), and the VAE decodes large images in
tiles. Without a CUDA GPU there is one policy: everything on the CPU, in system memory at 32 bits, weighed
against the RAM the machine has (a full-size 16-bit FLUX.1-dev needs far more than a laptop holds).

This module is pure arithmetic on byte counts (no diffusers, no Qt) so the choice is unit-testable for any
GPU size; ``gpu.generation.memory`` applies a policy to a loaded pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GiB = 2**30

# CUDA context, the display, other programs and allocator fragmentation: never plan to fill the card.
RESERVE_BYTES = 3 * GiB // 4
# Denoising working memory of a FLUX.1-sized transformer per output pixel (activations of one block at
# 4096 image + 512 text tokens, kernel workspaces). The fused model replays a CUDA graph per size, whose pool
# keeps this memory through the VAE decode: so a decode comes on top of it. Measured by
# gpu.bench.flux_pipeline_16gb (H200, 2026-11-21): 0.20 GiB left allocated after denoising plus 0.69 GiB idle
# in the graph's pool at 1024x1024; 928 bytes per pixel is 0.91 GiB there.
DENOISE_BYTES_PER_PIXEL = 928
# Untiled VAE decode per output pixel (bf16 decoder activations, 128 and 256 channels at full resolution). Measured
# by the same simulation: 2.378 GiB at 1024x1024 (2.375 planned). Tiled decode needs the same per tile.
DECODE_BYTES_PER_PIXEL = 2432
# One text encoder's activations while encoding (T5-XXL at 512 tokens needs ~0.1 GiB).
ENCODE_WORKSPACE_BYTES = GiB // 4
# Cards sold as "16 GB" report 15.6-16 GiB; at or below this the VAE tiles above 1024x1024 whatever the
# estimate says (a decode at 2048x2048 needs ~8 GiB of activations, half such a card).
LAPTOP_16GB_BYTES = 16 * GiB + GiB // 2
MAX_SIDE = 2048  # the largest image side the service accepts
TILE_SIDES = (1536, 1024, 768, 512)  # VAE tile sides tried, largest first
REFERENCE_SIZE = (1024, 1024)  # the image size plans are made for when not told the model's (FLUX.1's native one)

TEXT_ENCODER_PLACES = ("gpu", "gpu-while-encoding", "cpu")
# FLUX.1's transformer width (24 attention heads of 128) and its VAE decoder's widest channels at full resolution
# (``decoder_width``): the model the working memory above was measured on. One block's activations grow with the
# first, the decode's full-resolution feature maps with the second (``cpu_work_bytes_per_pixel``).
FLUX_TRANSFORMER_WIDTH = 24 * 128
FLUX_DECODER_WIDTH = 256


@dataclass(frozen=True)
class EncoderSize:
    """One text encoder in bytes at run time: ``total`` (all weights) and ``streamed`` (the GPU bytes while
    it runs block by block: everything outside its block list plus its largest block); ``in_ram``: system memory
    it holds beside them wherever it runs, never GPU memory (the originals a LoRA merged into it keeps)."""

    total: int
    streamed: int
    in_ram: int = 0


@dataclass(frozen=True)
class ModelSizes:
    """Run-time bytes of a pipeline's parts on the GPU (16-bit weights; 4-bit layers at their stored size: the
    fused kernels' repacked copy replaces the canonical buffers on the GPU, see gpu.kernels.repack)."""

    transformer: int
    text_encoders: tuple[EncoderSize, ...]
    vae: int
    # bits of the transformer's quantized weights (its widest format: 4 for an INT4/NVFP4/FP4/NF4 SVDQ file, 8 for
    # INT8); 16 when it is not quantized. A plan that does not fit advises a 4-bit model only to the others.
    weight_bits: int = 16
    # The transformer's width (attention heads x head size) and the VAE decoder's widest channels at full
    # resolution (the larger of ``block_out_channels[0]`` and ``[1]``: ``gpu.generation.memory.widths``), from their
    # configs: FLUX.1's where unknown.
    transformer_width: int = FLUX_TRANSFORMER_WIDTH
    decoder_width: int = FLUX_DECODER_WIDTH

    @property
    def core(self) -> int:
        """What stays on the GPU in every GPU policy: transformer and VAE."""
        return self.transformer + self.vae

    @property
    def encoders_total(self) -> int:
        return sum(e.total for e in self.text_encoders)

    @property
    def encoders_in_ram(self) -> int:
        """System memory the encoders hold beside their weights, wherever the plan puts them."""
        return sum(e.in_ram for e in self.text_encoders)


# FLUX.1-dev with an SVDQuant INT4 rank-32 transformer (bf16 16-bit parts), T5-XXL and CLIP-L in bf16, the
# FLUX VAE in bf16: counted on meta-device builds of the real configs (tests/test_memory_policy.py re-counts).
FLUX_DEV_INT4 = ModelSizes(
    transformer=6_686_984_320,
    text_encoders=(EncoderSize(246_121_576, 76_012_648 + 14_175_744),  # CLIP-L
                   EncoderSize(9_524_621_312, 263_200_768 + 385_896_448)),  # T5-XXL
    vae=167_639_366,
    weight_bits=4,
)  # fmt: skip


@dataclass(frozen=True)
class MemoryPolicy:
    """How the pipeline uses memory on this machine (shown to the user; applied by ``gpu.generation.memory``).

    name:                  stable identifier ("cpu", "gpu-resident", "encode-then-offload", "encode-by-block",
                           "encoders-on-cpu", "over-budget")
    description:           one or two sentences for the user
    device:                "cuda" or "cpu": where the transformer and the VAE run
    text_encoders:         "gpu" (resident), "gpu-while-encoding" (moved to the GPU to encode the prompt, one
                           encoder at a time, and off again before denoising) or "cpu" (encode on the CPU)
    stream_encoder_blocks: with "gpu-while-encoding": only one block of an encoder is on the GPU at a time
    vae_tile_size:         the VAE decodes in tiles of this many pixels per side when a side is larger;
                           None: never tiled
    total_vram_bytes:      the GPU memory the policy was planned for (None on CPU)
    budget_bytes:          the part of it the plan may fill (total minus a reserve)
    peak_estimate_bytes:   the plan's estimated GPU peak, or on the CPU the system memory the pipeline needs, at
                           the model's own image size (None: not estimated)
    total_ram_bytes:       on the CPU, the RAM the machine lets the app use (None: unknown, or a GPU plan)
    fits:                  False when even the smallest plan exceeds the budget, or on the CPU the RAM (the
                           user is warned; nothing is refused)
    """

    name: str
    description: str
    device: str
    text_encoders: str
    stream_encoder_blocks: bool = False
    vae_tile_size: int | None = None
    total_vram_bytes: int | None = None
    budget_bytes: int | None = None
    peak_estimate_bytes: int | None = None
    total_ram_bytes: int | None = None
    fits: bool = True
    details: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.text_encoders not in TEXT_ENCODER_PLACES:
            raise ValueError(f"text_encoders must be one of {TEXT_ENCODER_PLACES}, got {self.text_encoders!r}")
        if self.device not in ("cuda", "cpu"):
            raise ValueError(f"device must be 'cuda' or 'cpu', got {self.device!r}")

    def tiles_vae(self, width: int, height: int) -> bool:
        """Whether an image of this size is decoded in tiles."""
        return self.vae_tile_size is not None and max(width, height) > self.vae_tile_size

    @property
    def label(self) -> str:
        """The one-line text the app shows."""
        return f"Memory plan: {self.description}"


_CPU_TEXT = "No CUDA GPU: the whole pipeline (text encoders, transformer, VAE) runs on the CPU in system memory"
CPU_POLICY = MemoryPolicy(name="cpu", description=f"{_CPU_TEXT}. Slow but works.", device="cpu", text_encoders="cpu")


# FLUX.1's: 4,864 bytes a pixel (the decode's), 19 GiB at 2048x2048. Taken for every model, it planned the demo
# model (a transformer 12 times narrower, a decoder 4 times) 19.1 GiB at 2048x2048, where a 1-step job of it
# measured 4,646 MiB (the peak RSS of main.py generate on the CPU, the process's own 550 MiB at 128x128 included;
# 2026-11-24): scaled, its 1,216 bytes a pixel plan 4.8 GiB.
def work_bytes_per_pixel(sizes: ModelSizes) -> tuple[int, int]:
    """(denoising, decoding) working memory on a GPU per output pixel for a pipeline of ``sizes``: FLUX.1's measured
    figures (``DENOISE_BYTES_PER_PIXEL``, ``DECODE_BYTES_PER_PIXEL``) scaled to the model's transformer width and
    decoder channels; FLUX.1's own for FLUX.1's widths."""
    return (DENOISE_BYTES_PER_PIXEL * sizes.transformer_width // FLUX_TRANSFORMER_WIDTH,
            DECODE_BYTES_PER_PIXEL * sizes.decoder_width // FLUX_DECODER_WIDTH)  # fmt: skip


def cpu_work_bytes_per_pixel(sizes: ModelSizes) -> int:
    """Working memory on the CPU per output pixel for a pipeline of ``sizes``: the GPU's denoising or decoding
    memory (``work_bytes_per_pixel``), whichever is larger (on the CPU nothing keeps the denoising memory through
    the decode), at 32 bits instead of 16."""
    return 2 * max(work_bytes_per_pixel(sizes))


def amount(n: int) -> str:
    """``n`` bytes in words, "7.9 GiB", or MiB below 1 GiB (the demo model's 50 MiB of weights are no "0.0 GiB"):
    every size the engine says (memory plans, out-of-memory errors, disk space for a quantize run). A size that
    rounds to 1024 MiB is said in GiB: 2**30 - 2**19 bytes read "1024 MiB"."""
    mib = n / 2**20
    return f"{mib:.0f} MiB" if round(mib) < 1024 else f"{n / GiB:.1f} GiB"


def try_instead(weight_bits: int) -> str:
    """What to try when a model does not fit the GPU (the plan's warning, a job that ran out of memory): a
    smaller size, and a 4-bit model only to a model whose weights (``ModelSizes.weight_bits``) are not 4-bit."""
    return "a smaller size" if weight_bits <= 4 else "a 4-bit model or a smaller size"


def decode_bytes(side: int, per_pixel: int = DECODE_BYTES_PER_PIXEL) -> int:
    """Estimated untiled VAE decode activations for a square image of ``side`` pixels, at ``per_pixel`` bytes a
    pixel (FLUX.1's VAE by default; a model's own: ``work_bytes_per_pixel``)."""
    return per_pixel * side * side


def _decode_at(image_size: tuple[int, int], tile: int | None, per_pixel: int) -> int:
    """Estimated VAE decode activations for an image of ``image_size`` (width, height) at ``per_pixel`` bytes a
    pixel, in tiles of ``tile`` pixels a side where a side is larger (None: untiled)."""
    width, height = image_size
    if tile is not None:
        width, height = min(width, tile), min(height, tile)
    return per_pixel * width * height


def cpu_policy(
    sizes: ModelSizes | None, ram_bytes: int | None, image_size: tuple[int, int] = REFERENCE_SIZE
) -> MemoryPolicy:
    """The CPU plan for a pipeline of ``sizes`` (bytes at the CPU's run-time dtype, 32 bits) making images of
    ``image_size`` (width, height) on a machine with ``ram_bytes`` of RAM: what it needs, and a warning when that
    is more than the machine has. ``CPU_POLICY`` (no numbers) when the sizes are unknown."""
    if sizes is None:
        return CPU_POLICY
    weights = sizes.core + sizes.encoders_total + sizes.encoders_in_ram
    width, height = image_size
    need = weights + cpu_work_bytes_per_pixel(sizes) * width * height
    parts = f"{amount(weights)} of 32-bit weights and working memory for {width}x{height} images"
    fits = ram_bytes is None or need <= ram_bytes
    if ram_bytes is None:
        text = f"{_CPU_TEXT}: about {amount(need)} ({parts}); this machine's RAM is unknown. Slow but works"
    elif fits:
        text = f"{_CPU_TEXT}: about {amount(need)} of this machine's {amount(ram_bytes)} ({parts}). Slow but works"
    else:
        # What saves the most: a smaller image where the working memory is the most of it (a small model at a
        # large size), else a 4-bit transformer (unless it is one), a smaller image saving little beside the weights
        if need - weights > weights:
            advice = "a smaller image size, "
        else:
            advice = "" if sizes.weight_bits <= 4 else "a 4-bit (SVDQ) model of it, "
        text = (f"{_CPU_TEXT} and needs about {amount(need)} ({parts}), more than this machine's "
                f"{amount(ram_bytes)} of RAM: it will likely swap or be stopped by the system (try {advice}close "
                "other programs, or use a computer with more RAM or a CUDA GPU)")  # fmt: skip
    details = {"weights_gib": weights / GiB, "work_gib": (need - weights) / GiB}
    return MemoryPolicy(name="cpu", description=f"{text}.", device="cpu", text_encoders="cpu",
                        peak_estimate_bytes=need, total_ram_bytes=ram_bytes, fits=fits, details=details)  # fmt: skip


def choose_policy(
    total_vram_bytes: int | None,
    sizes: ModelSizes | None = None,
    ram_bytes: int | None = None,
    image_size: tuple[int, int] = REFERENCE_SIZE,
) -> MemoryPolicy:
    """The memory policy for a GPU of ``total_vram_bytes`` and a pipeline of ``sizes`` (default: FLUX.1-dev with an
    INT4 transformer) making images of ``image_size`` (width, height: the model's own, so the demo's 128x128 is not
    planned a 1024x1024 decode). Without a CUDA GPU (None) it is ``cpu_policy(sizes, ram_bytes, image_size)``:
    ``sizes`` are then at the CPU's run-time dtype, and no sizes give ``CPU_POLICY``.

    The plans, tried in order until one fits the budget (total minus ``RESERVE_BYTES``) at ``image_size``:
    everything resident; text encoders visiting the GPU whole; visiting block by block; encoding on the
    CPU. The transformer and the VAE stay on the GPU in all of them (moving a 6 GiB transformer every image
    would cost more than the encoders' move)."""
    if total_vram_bytes is None:
        return cpu_policy(sizes, ram_bytes, image_size)
    sizes = sizes or FLUX_DEV_INT4
    budget = total_vram_bytes - RESERVE_BYTES
    core = sizes.core
    # Scaled to this model's widths, as on the CPU: FLUX.1's figures taken for every model planned the demo model (a
    # transformer 12 times narrower, a decoder 4 times) FLUX.1's decode, and tiled it where nothing needed tiles
    denoise_per_pixel, decode_per_pixel = work_bytes_per_pixel(sizes)
    denoise = denoise_per_pixel * image_size[0] * image_size[1]
    biggest_whole = max((e.total for e in sizes.text_encoders), default=0)
    biggest_streamed = max((e.streamed for e in sizes.text_encoders), default=0)

    def run_peak(resident: int) -> int:
        """GPU peak while decoding at ``image_size`` (tiled where the plan tiles) next to the denoising memory that
        the transformer's CUDA graph keeps."""
        tile = _tile_size(total_vram_bytes, budget, resident + denoise, decode_per_pixel)
        return resident + denoise + _decode_at(image_size, tile, decode_per_pixel)

    details = {
        "transformer_gib": sizes.transformer / GiB,
        "vae_gib": sizes.vae / GiB,
        "text_encoders_gib": sizes.encoders_total / GiB,
        "text_encoders_in_ram_gib": sizes.encoders_in_ram / GiB,  # LoRA originals: system memory in every plan
        "budget_gib": budget / GiB,
        "denoise_gib": denoise / GiB,
    }
    encoders = f"text encoders ({amount(sizes.encoders_total)})"
    kept = f"transformer ({amount(sizes.transformer)}) and VAE stay on the GPU"
    resident_peak = core + sizes.encoders_total + denoise + _decode_at(image_size, None, decode_per_pixel)
    # Residency must leave room for an untiled decode at the model's size: saving the encoders' move (about a
    # second per prompt) is not worth tiling every native-size image.
    if resident_peak <= budget:
        name, place, stream = "gpu-resident", "gpu", False
        peak = resident_peak
        text = f"everything stays on the GPU ({amount(core + sizes.encoders_total)} of weights)"
    elif core + biggest_whole + ENCODE_WORKSPACE_BYTES <= budget and run_peak(core) <= budget:
        name, place, stream = "encode-then-offload", "gpu-while-encoding", False
        peak = max(core + biggest_whole + ENCODE_WORKSPACE_BYTES, run_peak(core))
        text = f"{kept}; {encoders} move to the GPU one at a time to encode the prompt, then back to system memory"
    elif core + biggest_streamed + ENCODE_WORKSPACE_BYTES <= budget and run_peak(core) <= budget:
        name, place, stream = "encode-by-block", "gpu-while-encoding", True
        peak = max(core + biggest_streamed + ENCODE_WORKSPACE_BYTES, run_peak(core))
        text = f"{kept}; {encoders} stay in system memory and visit the GPU one block at a time to encode the prompt"
    elif run_peak(core) <= budget:
        name, place, stream = "encoders-on-cpu", "cpu", False
        peak = run_peak(core)
        text = f"{kept}; {encoders} run on the CPU (slower prompt encoding)"
    else:
        name, place, stream = "over-budget", "cpu", False
        peak = run_peak(core)
        # The budget, not the card, is what the peak is weighed against: say both, or "more than this GPU has"
        # next to "7.9 GiB of 8.0 GiB" reads as a contradiction.
        text = (f"transformer, VAE and working memory need about {amount(peak)}, more than the {amount(budget)} "
                f"this plan may use of this GPU's {amount(total_vram_bytes)}: generation will likely run out of memory "
                f"(try {try_instead(sizes.weight_bits)}, or close other programs that use the GPU); {encoders} run on "
                "the CPU")  # fmt: skip
    resident = core + denoise + (sizes.encoders_total if place == "gpu" else 0)
    tile = _tile_size(total_vram_bytes, budget, resident, decode_per_pixel)
    if tile is not None:
        text += f"; VAE decodes images larger than {tile}x{tile} in tiles"
    text = text[0].upper() + text[1:]
    return MemoryPolicy(
        name=name, description=f"{text}. Planned peak {amount(peak)} of {amount(total_vram_bytes)}.",
        device="cuda", text_encoders=place, stream_encoder_blocks=stream, vae_tile_size=tile,
        total_vram_bytes=total_vram_bytes, budget_bytes=budget, peak_estimate_bytes=peak, fits=name != "over-budget",
        details=details,
    )  # fmt: skip


def _tile_size(total: int, budget: int, resident: int, per_pixel: int) -> int | None:
    """The VAE tile side: None when an untiled decode at the largest size (``per_pixel`` bytes a pixel) fits next to
    what stays resident during the decode (weights and the graph-held denoising memory; and the card is bigger than
    16 GB), else the largest tile that fits (at most 1024 on <= 16 GB cards)."""
    room = budget - resident
    if total > LAPTOP_16GB_BYTES and decode_bytes(MAX_SIDE, per_pixel) <= room:
        return None
    cap = 1024 if total <= LAPTOP_16GB_BYTES else TILE_SIDES[0]
    for side in TILE_SIDES:
        if side <= cap and decode_bytes(side, per_pixel) <= room:
            return side
    return TILE_SIDES[-1]


def detect_total_vram(device: object | None = None) -> int | None:
    """Usable memory of the CUDA device in bytes (None without CUDA or for a CPU device).

    A ``torch.cuda.set_per_process_memory_fraction`` in force is honoured, so a big GPU limited to 16 GiB
    plans like a 16 GB one (what gpu.bench.flux_pipeline_16gb relies on)."""
    import torch

    from gpu.system_info import cuda_index, memory_fraction

    if not torch.cuda.is_available():
        return None
    device = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
    if device.type != "cuda":
        return None
    index = cuda_index(device)
    return int(torch.cuda.get_device_properties(index).total_memory * memory_fraction(index))
