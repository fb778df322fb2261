"""Per-layer calibration statistics gathered from the inputs a linear layer sees."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerCalibration:
    """x_absmax: float32 [K], max |x| per input channel over every calibration token.
    x_sample: float32 [T, K], a seeded random subsample of the calibration tokens (for objectives).
    tokens_seen: how many tokens the statistics cover."""

    x_absmax: torch.Tensor
    x_sample: torch.Tensor
    tokens_seen: int


class CalibrationCollector:
    """Accumulates one layer's statistics batch by batch with bounded memory.

    Keeps the running channel absmax and a reservoir of at most ``max_tokens`` rows, chosen by a seeded
    generator so a run is reproducible."""

    def __init__(self, in_features: int, max_tokens: int = 1024, seed: int = 0) -> None:
        self.absmax = torch.zeros(in_features, dtype=torch.float32)
        self.max_tokens = max_tokens
        self.rows: list[torch.Tensor] = []
        self.kept = 0
        self.seen = 0
        self.gen = torch.Generator().manual_seed(seed)

    def add(self, x: torch.Tensor) -> None:
        """x: [..., K] any float dtype/device."""
        x = x.detach().reshape(-1, x.shape[-1]).float().cpu()
        self.absmax = torch.maximum(self.absmax, x.abs().amax(dim=0))
        self.seen += x.shape[0]
        # Keep every batch's fair share: sample rows so each token ends up with roughly equal odds.
        budget = max(1, self.max_tokens // 8)
        take = min(x.shape[0], budget)
        idx = torch.randperm(x.shape[0], generator=self.gen)[:take]
        self.rows.append(x[idx])
        self.kept += take
        if self.kept > 2 * self.max_tokens:
            self._shrink()

    def _shrink(self) -> None:
        allrows = torch.cat(self.rows)
        idx = torch.randperm(allrows.shape[0], generator=self.gen)[: self.max_tokens]
        self.rows = [allrows[idx]]
        self.kept = self.rows[0].shape[0]

    def result(self) -> LayerCalibration:
        if not self.rows:
            raise ValueError("no calibration data was collected for this layer")
        self._shrink()
        return LayerCalibration(self.absmax.clone(), self.rows[0], self.seen)
