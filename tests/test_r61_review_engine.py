"""R61 review, engine side: what a quantize source's new shape check (``gpu.streaming.source._check_shapes``) says.

Each test shows a defect found in the review and fails on the code it was written against (strict xfail); each
passes once that defect is fixed.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpu.errors import ModelLoadError
from gpu.paths import resources_dir
from tests.bfl_files import save_bfl_transformer

DEMO = resources_dir() / "models" / "demo"


@pytest.mark.xfail(strict=True, reason="R61: a single-file FLUX.1 Fill checkpoint is refused as 'incomplete or another "
                                       "model' over its final layer's shape, not as a model that needs an input image")
def test_a_single_file_fill_checkpoint_is_said_as_one_that_needs_an_input_image(tmp_path):
    """flux1-fill-dev.safetensors (its transformer takes 384 input channels: the latents, the image and its mask; it
    gives 64) picked as a quantize source. The source's config is read from its shapes without ``out_channels``,
    which diffusers then takes as the 384 going in; the new shape check finds the file's final layer [64, ...] where
    that config has [384, ...], and says "2 tensors have other shapes than a FLUX.1 transformer of these sizes:
    final_layer.linear.bias is [64] (not [384]) ..." with the hint "the file is incomplete or another model": the
    user downloads 23 GB again. A Fill (or Canny, Depth) pipeline folder is said as one that needs an input image
    (``gpu.pipeline_checks``: "its transformer takes 384 input channels, not the 64 of text-to-image FLUX.1")."""
    from gpu.streaming.source import bfl_file_source

    single = save_bfl_transformer(DEMO, tmp_path / "flux1-fill-dev.safetensors")
    tensors = load_file(single)
    tensors["img_in.weight"] = torch.cat([tensors["img_in.weight"]] * 6, dim=1)  # 384 channels in, 64 out, as Fill
    save_file(tensors, str(single))
    with pytest.raises(ModelLoadError) as err:
        bfl_file_source(single)
    assert "input image" in str(err.value) and err.value.hint != "the file is incomplete or another model", (
        str(err.value), err.value.hint)
