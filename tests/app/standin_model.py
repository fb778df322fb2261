"""A tiny untrained FLUX pipeline folder, used only while the real demo model is not in resources/ yet.

It is built from the demo model's own builders, so it has the same architecture and loads through the same
engine code; images are noise, which is all the GUI tests need to check plumbing."""

from __future__ import annotations

from pathlib import Path


def build_standin(folder: Path) -> Path:
    if (folder / "model_index.json").is_file():
        return folder
    import json

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    from gpu.demo.text import build_text_encoders, build_tokenizers
    from gpu.demo.train_transformer import build_transformer
    from gpu.demo.train_vae import build_vae

    torch.manual_seed(0)
    clip_tok, t5_tok = build_tokenizers()
    clip, t5 = build_text_encoders(clip_tok, t5_tok)
    vae = build_vae()
    vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                        tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok,
                        transformer=build_transformer())
    pipe.save_pretrained(folder, safe_serialization=True)
    defaults = {"width": 128, "height": 128, "steps": 4, "guidance": 3.5, "max_sequence_length": 32}
    (folder / "nibble.json").write_text(json.dumps(defaults))
    return folder
