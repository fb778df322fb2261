"""The in-memory quantizer on a tiny random FLUX: every method and precision, loaded into stock diffusers."""

from __future__ import annotations

import hashlib

import pytest
import torch
from tiny_flux import QUICK_CALIBRATION

from gpu.checkpoint.skeleton import load_quantized_transformer
from gpu.generation.pipeline_loader import default_device
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.modules import SVDQLinear
from gpu.quantizer import QuantizeConfig, QuantizeEvent, quantize_model
from gpu.svdquant.smoothing import alpha_grid

CASES = [
    ("naive", "int4"), ("smoothquant", "int4"), ("svd", "int4"), ("lorc", "int4"), ("svdquant", "int4"),
    ("nf4", "int4"), ("svdquant", "nvfp4"), ("svdquant", "fp4"), ("svdquant", "int8"),
]  # fmt: skip
# A coarse alpha search (0, 0.5, 1) keeps the module's nine quantizations fast (half the time of the default 11
# points); the method ordering below holds with it by a wide margin (svdquant INT4 0.0023 vs the closest,
# smoothquant, 0.0030; with 11 points 0.0022 and 0.0030).
ALPHA_POINTS = QUICK_CALIBRATION["alpha_points"]


def _transformer_inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(2, 16, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(2, 8, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(2, cfg.pooled_projection_dim, generator=g),
        timestep=torch.tensor([0.3, 0.8]),
        img_ids=torch.zeros(16, 3),
        txt_ids=torch.zeros(8, 3),
    )


@pytest.fixture(scope="module")
def quantized(tiny_flux, tiny_flux_int4, tmp_path_factory):
    lib = ModelLibrary(tmp_path_factory.mktemp("lib"))
    out = {("svdquant", "int4"): tiny_flux_int4}  # the session's, made with the same calibration
    for method, precision in CASES:
        if (method, precision) not in out:
            path = tmp_path_factory.mktemp("q") / f"{method}-{precision}.safetensors"
            cfg = QuantizeConfig(method=method, precision=precision, **QUICK_CALIBRATION)
            out[(method, precision)] = quantize_model(tiny_flux, path, cfg, library=lib)
    return out


def test_every_method_loads_and_approximates_the_16bit_transformer(tiny_flux, quantized):
    from diffusers import FluxTransformer2DModel

    ref = FluxTransformer2DModel.from_pretrained(tiny_flux, subfolder="transformer").float().eval()
    inputs = _transformer_inputs(ref.config)
    with torch.no_grad():
        y_ref = ref(**inputs).sample
    errors = {}
    for case, path in quantized.items():
        model, meta = load_quantized_transformer(path, runtime_dtype=torch.float32)
        # The record says what the layers are: nf4 weights, and a rank only where a method has the branch.
        assert meta.quantization["method"] == case[0]
        assert meta.quantization["precision"] == ("nf4" if case[0] == "nf4" else case[1])
        assert meta.quantization["rank"] == (32 if case[0] in ("svdquant", "svd", "lorc") else 0)
        # The alpha search tried the configured grid, and the file says so where the method searches alpha.
        smooths = case[0] in ("svdquant", "smoothquant")
        assert meta.calibration["alpha_points"] == (ALPHA_POINTS if smooths else None)
        alphas = {e["alpha"] for e in meta.layers.values() if e["alpha"] is not None}
        assert alphas <= set(alpha_grid(ALPHA_POINTS)) and bool(alphas) == smooths, alphas
        layers = [m for m in model.modules() if isinstance(m, SVDQLinear)]
        assert len(layers) == 40  # 2 double blocks x 16 + 2 single blocks x 4... all adapter targets
        with torch.no_grad():
            y = model(**inputs).sample
        errors[case] = float((y - y_ref).norm() / y_ref.norm())
    assert all(e < 0.5 for e in errors.values()), errors
    assert errors[("svdquant", "int4")] < errors[("naive", "int4")]
    assert errors[("svdquant", "int4")] < errors[("svd", "int4")]
    assert errors[("svdquant", "int4")] < errors[("smoothquant", "int4")]
    assert errors[("svdquant", "int8")] < errors[("svdquant", "int4")]
    # The alpha search found a good alpha: with the worst alpha of the grid these two come within 2% of their
    # unsmoothed counterparts (svd, naive); with the search's pick they are 35-45% below them.
    assert errors[("svdquant", "int4")] < 0.8 * errors[("svd", "int4")]
    assert errors[("smoothquant", "int4")] < 0.8 * errors[("naive", "int4")]


def test_quantized_file_generates_through_stock_flux_pipeline(quantized, tiny_flux):
    service = GenerationService(ModelLibrary())
    path = quantized[("svdquant", "int4")]
    [result] = service.generate(GenerationRequest("a red circle", model=str(path), seed=3))
    assert type(service.loaded.pipe).__name__ == "FluxPipeline"
    assert result.image.size == (64, 64)
    s = result.settings
    assert s["model_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "PyTorch reference on CPU"
    assert where in s["execution_path"]  # the path the user is shown names where it ran
    assert s["steps"] == 3 and s["guidance"] == 3.0  # defaults recorded from the base folder's nibble.json


def test_progress_events_and_cancel(tiny_flux, tmp_path, monkeypatch):
    import gc

    events: list[QuantizeEvent] = []
    cfg = QuantizeConfig(method="naive", calib_prompts=2, calib_steps=1)
    collections: list[tuple] = []
    collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or collect(*a))
    quantize_model(tiny_flux, tmp_path / "a.safetensors", cfg, on_event=events.append, library=ModelLibrary())
    monkeypatch.setattr(gc, "collect", collect)
    # A full collection after each block and after the text encoders took longer than a tiny model's layers: the
    # CPU run collects only after freeing GC_MIN_BYTES or more (this model's blocks and encoders are far smaller);
    # on CUDA each release still collects, so that the allocator can hand the freed blocks back.
    assert bool(collections) == (default_device().type == "cuda")
    layer_events = [e for e in events if e.kind == "layer"]
    assert [e.index for e in layer_events] == list(range(1, 41))
    assert events[-1].kind == "done"
    from gpu.errors import Cancelled

    with pytest.raises(Cancelled):
        quantize_model(tiny_flux, tmp_path / "b.safetensors", cfg, should_cancel=lambda: True, library=ModelLibrary())
    assert not (tmp_path / "b.safetensors").exists()


def test_quantizing_an_svdq_file_is_refused(quantized, tmp_path):
    from gpu.errors import ModelLoadError

    # Was "only a 16-bit diffusers pipeline folder can be quantized", as of any other file: read as a bug.
    with pytest.raises(ModelLoadError, match="already a quantized .SVDQ 4-bit. model: it needs no quantizing") as err:
        quantize_model(quantized[("naive", "int4")], tmp_path / "x.safetensors", library=ModelLibrary())
    assert "--model" in err.value.hint and "Models panel" in err.value.hint


def test_alpha_points_default_validation_and_resume_fingerprint():
    """The default search is the 11-point grid 0, 0.1, ..., 1 (as before the setting existed); other counts are
    part of what a resumable parts folder must match; impossible counts are refused with the range."""
    from gpu.errors import BadRequestError
    from main import build_parser

    assert QuantizeConfig().alpha_points == 11
    assert alpha_grid(11) == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert alpha_grid(5) == (0.0, 0.25, 0.5, 0.75, 1.0)
    # left out, the run gets QuantizeConfig's 11 (test_quantize_says_which_given_options_its_method_ignores): the
    # parser keeps None, to tell a grid the user gave from the default
    assert build_parser().parse_args(["quantize", "x", "--out", "y.safetensors"]).alpha_points is None
    # Parts folders written before the setting existed have no alpha_points in their fingerprint: still resumable.
    assert "alpha_points" not in QuantizeConfig().fingerprint()
    assert QuantizeConfig(alpha_points=5).fingerprint()["alpha_points"] == 5
    # Methods that do not smooth never use it: their finished layers resume whatever the grid.
    assert QuantizeConfig(method="naive", alpha_points=5).fingerprint() == QuantizeConfig(method="naive").fingerprint()
    QuantizeConfig(alpha_points=2).validate()
    QuantizeConfig(alpha_points=101).validate()
    for bad in (1, 0, 102):
        with pytest.raises(BadRequestError, match=f"^{bad} alpha points is not possible: use 2 to 101$") as err:
            QuantizeConfig(alpha_points=bad).validate()
        assert "0, 0.1, ..., 1" in err.value.hint


@pytest.mark.parametrize("method", ["svdquant", "naive", "smoothquant", "svd", "lorc", "nf4"])
def test_a_setting_the_method_does_not_use_does_not_change_the_resume_key(method):
    """The rank of a method without a low-rank branch and the shared smoothing of one that does not smooth are
    greyed out in the wizard, yet changed the resume key: a stopped naive run given another rank (the wizard's
    greyed value, the command line's default) started over. Only what the method uses counts; and the base
    pipeline as it is spelled, never (its files and prompts count)."""
    base = QuantizeConfig(method=method)
    uses = {"rank": method in ("svdquant", "svd", "lorc"), "shared_smoothing": method in ("svdquant", "smoothquant"),
            "precision": method != "nf4", "base": False}  # fmt: skip
    for field, other in (("rank", 8), ("shared_smoothing", False), ("precision", "nvfp4"), ("base", "FLUX.1-dev")):
        changed = QuantizeConfig(method=method, **{field: other})
        assert (changed.fingerprint() != base.fingerprint()) == uses[field], field


def test_alpha_points_from_the_command_line_reach_the_quantizer(tiny_flux, tmp_path, capsys):
    from main import main

    out = tmp_path / "x.safetensors"
    assert main(["quantize", str(tiny_flux), "--out", str(out), "--alpha-points", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 alpha points is not possible: use 2 to 101 (") and err.count("\n") == 1, err
    assert not out.exists()


def test_the_alpha_search_factorizes_each_candidate_once(monkeypatch):
    """Each alpha's candidate also refit its low-rank branch once more for a refinement that never came, and the
    chosen alpha's first candidate was made again before its refinements: a layer took 2 x points + refine + 2
    factorizations (SVDs, the quantizer's costliest step). Now points + refine: the search's candidate is reused."""
    from gpu.modules.layer_spec import spec_for
    from gpu.svdquant import decompose
    from gpu.svdquant.calibration import LayerCalibration

    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 64, generator=g)
    x = torch.randn(128, 64, generator=g)
    x[:, :3] *= 20  # outlier channels: the search has something to choose
    calib = LayerCalibration(x.abs().amax(dim=0), x, x.shape[0])
    cfg = decompose.DecomposeConfig(alpha_grid=alpha_grid(5), refine_iters=2, dtype=torch.float32)
    calls: list[int] = []
    factorize = decompose.low_rank_factors
    monkeypatch.setattr(decompose, "low_rank_factors", lambda *a, **kw: calls.append(1) or factorize(*a, **kw))
    layer = decompose.decompose_linear(w, None, spec_for("svdquant", "int4", 8, "w4a4"), calib, cfg)
    assert len(calls) == 5 + 2
    assert layer.alpha in alpha_grid(5) and 0 < layer.error < 1
