"""The block inputs of a quantize run's calibration samples (``ActivationStore``): kept in RAM, or spilled to disk
above the RAM budget (``spills``), one scratch folder of them at a time (``remove_scratch``)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load, save_file

from gpu.atomic import output_errors
from gpu.errors import OutputError
from gpu.streaming.parts_folder import delete_entry, not_a_folder

if TYPE_CHECKING:  # imported, gpu.quantizer's package would import the engine, which imports this module
    from gpu.quantizer.config import QuantizeConfig


class ActivationStore:
    """Per-sample block inputs: (hidden [1, S_img, D], encoder [1, S_txt, D]) in runtime dtype.

    In RAM, or one safetensors file per sample under ``spill`` when the estimate exceeds the RAM budget."""

    def __init__(self, spill: Path | None) -> None:
        self.spill = spill
        self.mem: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if spill is not None:
            remove_scratch(spill)  # a link or junction of that name too: the spill went wherever it leads (GiBs)
            if not_a_folder(spill):
                raise OutputError(f"{spill} is in the way: the quantizer spills block inputs into a folder of that "
                                  "name", "remove it, then run again")  # fmt: skip
            with output_errors(spill):  # a folder left over (not removed, being held) is written over
                spill.mkdir(parents=True, exist_ok=True)

    def put(self, i: int, h: torch.Tensor, e: torch.Tensor) -> None:
        """Keeps sample ``i``'s block inputs: ``h`` [1, S_img, D] and ``e`` [1, S_txt, D] (runtime dtype), moved
        to the CPU."""
        h, e = h.detach().cpu(), e.detach().cpu()
        if self.spill is None:
            self.mem[i] = (h, e)
        else:
            path = self.spill / f"{i}.safetensors"  # scratch, rewritten on resume: no fsync needed
            with output_errors(path):  # a full disk: OutputError naming the file, not a traceback
                save_file({"h": h.contiguous(), "e": e.contiguous()}, str(path))

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``i``'s block inputs as put: (hidden [1, S_img, D], encoder [1, S_txt, D]) on the CPU."""
        if self.spill is None:
            return self.mem[i]
        # Read into memory, not mapped: Windows refuses to delete a mapped file, so the parts folder's removal at
        # the end failed after a run that spilled (every run under the 16 GB laptop preset's RAM budget).
        d = load((self.spill / f"{i}.safetensors").read_bytes())
        return d["h"], d["e"]

    def discard(self) -> None:
        """Frees what the store holds (its spill folder too) once no block reads it any more."""
        self.mem.clear()
        if self.spill is not None:
            remove_scratch(self.spill)


def remove_scratch(folder: Path) -> None:
    """Removes a scratch folder of spilled block inputs (``SCRATCH_FOLDERS``); a link, junction or file of that name
    goes as such (``delete_entry``, ``not_a_folder``'s rule: rmtree refuses a link or junction, and a spilling run
    wrote into its target, which ``is_symlink`` does not tell of a junction: ``ActivationStore`` refuses one)."""
    # Never fails a run: a folder that cannot go now (a virus scanner holding a file) goes with the parts at the end.
    with suppress(OSError):
        delete_entry(folder, ignore_errors=True)


def activation_bytes(tokens: int, config: dict, dtype: torch.dtype) -> int:
    """Bytes of one sample's block inputs (or outputs): ``tokens`` x the model's width in ``dtype``."""
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    return tokens * dim * torch.empty((), dtype=dtype).element_size()


def spills(per_sample: int, count: int, config: QuantizeConfig) -> bool:
    """Whether the block inputs go to disk: a block's inputs and outputs together (2 x ``count`` samples of
    ``per_sample`` bytes) would take more than half the RAM budget."""
    return 2 * per_sample * count > config.ram_budget_gib * 2**30 / 2
