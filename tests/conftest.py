"""Shared fixtures: a per-test data dir, and tiny random FLUX pipelines built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test writes user data into its own folder, never the real per-user one."""
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(data))
    return data


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    from tiny_flux import make_tiny_flux

    return make_tiny_flux(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_flux_int4(tiny_flux, tmp_path_factory) -> Path:
    """The tiny pipeline quantized with SVDQuant INT4 (rank 32) through the public quantizer, with
    ``QUICK_CALIBRATION``; shared by every test that reads it (copy it before changing it)."""
    from tiny_flux import QUICK_CALIBRATION

    from gpu.library import ModelLibrary
    from gpu.quantizer import QuantizeConfig, quantize_model

    out = tmp_path_factory.mktemp("q") / "tiny-int4.safetensors"
    lib = ModelLibrary(tmp_path_factory.mktemp("libdata"))
    return quantize_model(tiny_flux, out, QuantizeConfig(**QUICK_CALIBRATION), library=lib)
