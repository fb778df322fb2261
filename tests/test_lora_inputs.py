"""Bad and unusual LoRA inputs, as a demanding user gives them: each is refused with a message naming the file and
the problem, before the model changes (and, on the command line, before the model loads), or applied as the file
means it; a refusal leaves the model with the LoRAs it had."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from lora_files import alpha_edited, keys_renamed, metadata_edited, sdxl_like, text_encoder_lora
from safetensors.torch import save_file

from gpu.lora import LoraError, manager_for, parse_lora_arg, read_lora
from gpu.paths import resources_dir

SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"
PROJ = "lora_unet_double_blocks_0_img_attn_proj"  # the demo model's transformer_blocks.0.attn.to_out.0: 256 -> 256


def _kohya(path: Path, down: torch.Tensor | None = None, up: torch.Tensor | None = None,
           alpha: float | None = 4.0, extra: dict | None = None) -> Path:  # fmt: skip
    """A one-layer kohya FLUX.1 LoRA (rank 4 on the demo model's first image attention output unless told)."""
    g = torch.Generator().manual_seed(0)
    sd = {f"{PROJ}.lora_down.weight": torch.randn(4, 256, generator=g) * 0.1 if down is None else down,
          f"{PROJ}.lora_up.weight": torch.randn(256, 4, generator=g) * 0.1 if up is None else up}  # fmt: skip
    if alpha is not None:
        sd[f"{PROJ}.alpha"] = torch.tensor(alpha)
    save_file({**sd, **(extra or {})}, path)
    return path


@pytest.fixture(scope="module")
def demo():
    """The shipped demo model's transformer (16-bit: LoRAs merge into its weights)."""
    from diffusers import FluxTransformer2DModel

    path = resources_dir() / "models" / "demo"
    return FluxTransformer2DModel.from_pretrained(path, subfolder="transformer", torch_dtype=torch.float32).eval()


def _output(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    cfg = model.config
    inputs = dict(
        hidden_states=torch.randn(1, 16, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(1, 8, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g),
        timestep=torch.tensor([0.5]), img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3),
    )  # fmt: skip
    with torch.no_grad():
        return model(**inputs).sample


def _refused_and_untouched(model, loras: list, words: str) -> LoraError:
    """``loras`` (after the shipped LoRA) is refused naming ``words``; the shipped LoRA stays on, as it was."""
    manager = manager_for(model)
    manager.set([(SHIPPED, 1.0)])
    before = _output(model)
    with pytest.raises(LoraError) as err:
        manager.set([(SHIPPED, 1.0), *loras])
    assert words in err.value.text, err.value.text
    assert torch.equal(_output(model), before)
    return err.value


def test_a_scalar_up_factor_beside_a_convolution_down_is_refused_not_a_traceback(tmp_path, demo):
    """A [r, K, 1, 1] down factor made the reader flatten the up factor too: a 0-d one raised IndexError."""
    bad = _kohya(tmp_path / "odd.safetensors", down=torch.randn(4, 256, 1, 1), up=torch.tensor(1.0))
    _refused_and_untouched(demo, [(bad, 1.0)], f"odd.safetensors: {PROJ} has inconsistent")
    conv = _kohya(tmp_path / "conv.safetensors", down=torch.randn(4, 256, 1, 1), up=torch.randn(256, 4, 1, 1))
    assert read_lora(conv).targets[0].down.shape == (4, 256)  # a real 1×1 convolution's LoRA still reads
    manager_for(demo).set([])


def test_a_convolution_factor_beside_a_linear_one_applies_as_the_linear_lora(tmp_path, demo):
    """The reader flattened both factors only when the down one was 4-d, while the header check takes each on
    its own: a [N, r, 1, 1] up beside a 2-d down reached the merge still 4-d (a torch error, not a LoraError)."""
    g = torch.Generator().manual_seed(1)
    down, up = torch.randn(4, 256, generator=g) * 0.1, torch.randn(256, 4, generator=g) * 0.1
    manager = manager_for(demo)
    manager.set([(_kohya(tmp_path / "linear.safetensors", down=down, up=up), 1.0)])
    expected = _output(demo)
    for name, mixed in (("up", (down, up[:, :, None, None])), ("down", (down[:, :, None, None], up))):
        lora = _kohya(tmp_path / f"conv {name}.safetensors", *mixed)
        assert [tuple(t.up.shape) for t in read_lora(lora).targets] == [(256, 4)]
        manager.set([(lora, 1.0)])
        assert torch.equal(_output(demo), expected), name
    manager.set([])


def test_alpha_zero_means_alpha_equals_rank_and_a_broken_alpha_is_refused(tmp_path, demo):
    """alpha 0 scaled the LoRA to nothing: it was applied, listed in the PNG, and changed no pixel (kohya's trainer
    reads 0 as "alpha = rank"). A NaN or infinite alpha was taken, and every image came out NaN at step 1."""
    zero = _kohya(tmp_path / "zero.safetensors", alpha=0.0)
    same_as_rank = _kohya(tmp_path / "rank.safetensors", alpha=4.0)
    assert read_lora(zero).targets[0].scale == 1.0
    manager_for(demo).set([])
    plain = _output(demo)
    manager_for(demo).set([(zero, 1.0)])
    with_zero = _output(demo)
    manager_for(demo).set([(same_as_rank, 1.0)])
    assert not torch.equal(with_zero, plain) and torch.equal(with_zero, _output(demo))
    negative = _kohya(tmp_path / "negative.safetensors", alpha=-4.0)  # applied as the file says: the LoRA inverted
    manager_for(demo).set([(negative, 1.0)])
    inverted = _output(demo)
    manager_for(demo).set([(same_as_rank, -1.0)])
    assert torch.equal(inverted, _output(demo))
    for alpha in (float("nan"), float("inf")):
        broken = _kohya(tmp_path / "broken.safetensors", alpha=alpha)
        _refused_and_untouched(demo, [(broken, 1.0)], f"broken.safetensors: {PROJ}.alpha is {alpha}")
    manager_for(demo).set([])


def test_integer_factors_are_refused(tmp_path, demo):
    """int8 or bool "weights" (a quantized variant) were cast to float and applied as if they were a LoRA."""
    for dtype, name in ((torch.int8, "I8"), (torch.bool, "BOOL")):
        bad = _kohya(tmp_path / f"quantized {name}.safetensors", down=torch.ones(4, 256, dtype=dtype),
                     up=torch.ones(256, 4, dtype=dtype))  # fmt: skip
        words = f"quantized {name}.safetensors: {PROJ}.lora_down.weight holds {name} numbers, not floating point"
        if dtype == torch.bool:
            with pytest.raises(LoraError, match=words):
                read_lora(bad)
        else:  # once through the manager is enough: the refusal comes from the same header check
            _refused_and_untouched(demo, [(bad, 1.0)], words)
    manager_for(demo).set([])


def test_a_change_too_large_for_the_model_is_refused_before_it_is_applied(tmp_path, demo):
    """Finite factors whose product overflows (or an alpha near the float range) were merged: every image NaN."""
    huge = _kohya(tmp_path / "huge.safetensors", down=torch.full((4, 256), 1e20), up=torch.full((256, 4), 1e20))
    words = f"huge.safetensors: {PROJ} at strength 1 (alpha / rank 1) would change transformer_blocks.0.attn.to_out.0"
    _refused_and_untouched(demo, [(huge, 1.0)], words)
    absurd = _kohya(tmp_path / "absurd alpha.safetensors", up=torch.full((256, 4), 10.0), alpha=1e38)
    _refused_and_untouched(demo, [(absurd, 0.5)], "more than its float32 numbers can hold")
    manager_for(demo).set([])


def test_the_same_lora_twice_is_refused(tmp_path, demo):
    """Given twice (or as a copy), a LoRA was applied twice, at the sum of its strengths, and listed twice."""
    _refused_and_untouched(demo, [(str(SHIPPED), -1.0)], f"{SHIPPED} is asked for twice")
    copy = shutil.copy(SHIPPED, tmp_path / "my copy ✓.safetensors")
    _refused_and_untouched(demo, [(copy, 0.5)], "monochrome-style.safetensors and my copy ✓.safetensors are the same")
    manager_for(demo).set([(SHIPPED, 1.0), (copy, 0.0)])  # at strength 0 the copy is not applied: nothing doubles
    assert [a.file.name for a in manager_for(demo).active] == ["monochrome-style"]
    manager_for(demo).set([])


def test_copies_of_one_name_in_two_folders_are_named_by_their_paths(tmp_path, demo):
    """Refused as "monochrome-style.safetensors and monochrome-style.safetensors are the same LoRA": which files,
    the words did not say (two versions kept in loras/a/ and loras/b/ read the same)."""
    copy = shutil.copy(SHIPPED, (tmp_path / "b").mkdir() or tmp_path / "b" / SHIPPED.name)
    _refused_and_untouched(demo, [(copy, 0.5)], f"{SHIPPED} and {copy} are the same LoRA (identical files)")


def test_a_copy_whose_metadata_alone_was_edited_is_the_same_lora(tmp_path, demo):
    """The check compared whole files: a copy whose trigger words were edited was applied beside the original, at
    twice the strength. The same weights with another PEFT lora_alpha in the metadata are another LoRA, though."""
    edited = metadata_edited(SHIPPED, tmp_path / "my words.safetensors", **{"modelspec.trigger_phrase": "grey, sketch"})
    _refused_and_untouched(demo, [(edited, 0.5)], "monochrome-style.safetensors and my words.safetensors are the "
                           "same LoRA (the same weights; only their metadata differs)")  # fmt: skip
    stronger = alpha_edited(SHIPPED, tmp_path / "alpha 16.safetensors", 16)
    assert [t.scale for t in read_lora(stronger).targets][:1] == [2.0]
    manager_for(demo).set([(SHIPPED, 1.0), (stronger, 0.5)])
    assert [a.file.name for a in manager_for(demo).active] == ["monochrome-style", "alpha 16"]
    manager_for(demo).set([])


def test_a_copy_under_renamed_keys_is_named_so(tmp_path, demo):
    """The same weights under other key names (kohya's for diffusers/PEFT's) are the same LoRA, which was said as
    "the same weights; only their metadata differs": its metadata is the same, its keys are not."""
    renamed = keys_renamed(SHIPPED, tmp_path / "style kohya.safetensors")
    _refused_and_untouched(demo, [(renamed, 0.5)], "monochrome-style.safetensors and style kohya.safetensors are the "
                           "same LoRA (the same weights under other key names)")  # fmt: skip
    manager_for(demo).set([])


def test_a_text_encoder_part_without_the_encoder_is_refused_and_a_text_encoder_only_file_too(tmp_path, demo):
    """A transformer alone (no pipeline's encoders handed to its manager) cannot take a file's CLIP part: said by
    name, the model untouched. A file that is nothing but a text encoder's LoRA is no FLUX.1 LoRA."""
    te = {"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(4, 768),
          "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(3072, 4)}  # fmt: skip
    both = _kohya(tmp_path / "both.safetensors", extra=te)
    err = _refused_and_untouched(demo, [(both, 1.0)], "both.safetensors also changes the CLIP text encoder, which "
                                 "this model has not (lora_te1_text_model_encoder_layers_0_mlp_fc1)")  # fmt: skip
    assert "both text encoders" in err.hint
    save_file(te, tmp_path / "clip only.safetensors")
    with pytest.raises(LoraError, match="clip only.safetensors is a LoRA for a text encoder, not FLUX.1"):
        read_lora(tmp_path / "clip only.safetensors")
    manager_for(demo).set([])


def test_a_file_gone_since_it_was_read_says_what_to_do(tmp_path, demo):
    """The manager's own check said only "does not exist", without the hint ``read_lora`` gives."""
    gone = shutil.copy(SHIPPED, tmp_path / "gone.safetensors")
    manager_for(demo).set([(gone, 1.0)])
    Path(gone).unlink()
    err = _refused_and_untouched(demo, [(gone, 1.0)], f"LoRA file {gone} does not exist")
    assert "drop its --lora, or switch it off in the LoRA panel" in err.hint  # said to the CLI and the app
    manager_for(demo).set([])


def test_a_lora_file_the_system_will_not_show_is_refused_by_name(tmp_path, demo, monkeypatch):
    """A folder on the way that may not be searched (EACCES) made the manager's check raise PermissionError, and
    a file back between the manager's look and its check (a race) re-raised the plain OSError: no LoraError, no
    name. The operating system's refusals are made here (tests run as root, whom permissions do not stop)."""
    locked = Path(shutil.copy(SHIPPED, tmp_path / "locked.safetensors"))
    racy = Path(shutil.copy(SHIPPED, tmp_path / "racy.safetensors"))
    stat, looks = Path.stat, []

    def refusing_stat(self: Path, **kwargs) -> os.stat_result:
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        if self == racy:
            looks.append(self)
            if len(looks) == 2:  # there at the header's check, gone at the manager's look, back at the next
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self))
        return stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing_stat)
    err = _refused_and_untouched(demo, [(locked, 1.0)], f"LoRA file {locked} cannot be read (Permission denied)")
    assert "you may read the file and its folders" in err.hint and isinstance(err.__cause__, PermissionError)
    _refused_and_untouched(demo, [(racy, 1.0)], f"LoRA file {racy} cannot be read (No such file or directory)")
    manager_for(demo).set([])


def test_a_lora_read_keeps_no_mapping_of_its_file(tmp_path):
    """The manager keeps what it read for the session; an fp32 file's tensors were views of the mapped file (the
    shipped example is fp32), and Windows refuses to delete or replace a mapped file: the user could not delete
    or update a LoRA they had tried until the app quit."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    path = _kohya(tmp_path / "fp32.safetensors")
    lora = read_lora(path)
    assert all(t.down.dtype == torch.float32 for t in lora.targets)
    assert str(path) not in maps.read_text()


def test_the_command_line_checks_its_loras_before_it_loads_a_model(tmp_path, capsys):
    """A bad --lora was found only after the model had loaded (seconds later, or minutes for FLUX.1): here the
    model does not even exist, and the LoRA's problem is what is said."""
    from main import main

    sdxl = sdxl_like(tmp_path / "sdxl style.safetensors")
    torch.save({"x": torch.zeros(1)}, tmp_path / "old.ckpt")
    cases = [
        (str(sdxl), "sdxl style.safetensors is a LoRA for Stable Diffusion 1.x/2.x/SDXL (UNet), not FLUX.1"),
        (str(tmp_path / "old.ckpt"), "old.ckpt is not a readable .safetensors LoRA file: a PyTorch pickle"),
        (str(tmp_path), f"LoRA {tmp_path} is a folder, not a file"),
        (str(tmp_path / "nope.safetensors:0.5"), f"LoRA file {tmp_path / 'nope.safetensors'} does not exist"),
        (f"{SHIPPED}:1e6", f"--lora {SHIPPED}:1e6: strength 1e+06 is not possible (use a strength from -2 to 2)"),
        (f"{SHIPPED}:nan", "strength nan is not possible"),
        (f"{SHIPPED}:1:9", f"--lora {SHIPPED}:1:9: text strength 9 is not possible (use a text strength from -2 to 2)"),
        (f"{SHIPPED}:1:x", f"--lora {SHIPPED}:1:x: text strength 'x' is not a number"),
    ]
    for arg, words in cases:
        argv = ["generate", "x", "--model", str(tmp_path / "no model"), "--out", str(tmp_path / "a.png"), "--lora", arg]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "Traceback" not in err, (arg, err)
    assert parse_lora_arg(f"{SHIPPED}:-0.5") == (str(SHIPPED), -0.5)
    # FILE:STRENGTH:TEXT_STRENGTH, as given: the manager leaves out the text strength of a file without a CLIP or
    # T5 part, as the shipped LoRA is (tests/test_lora_text_encoders.py)
    both = text_encoder_lora(tmp_path / "with clip.safetensors")
    assert parse_lora_arg(f"{both}:0.8:0.25") == (str(both), 0.8, 0.25)
    assert parse_lora_arg(f"{SHIPPED}:-0.5:0.25") == (str(SHIPPED), -0.5, 0.25)


def test_the_command_line_refuses_one_lora_file_given_twice_before_it_loads_a_model(tmp_path, capsys):
    """``--lora a --lora a`` was refused only once the model had loaded (the manager finds it); the same file
    under another spelling of its path is found too, and a strength-0 entry (skipped when applied) is no clash."""
    from main import main

    other_spelling = tmp_path / "link.safetensors"
    other_spelling.symlink_to(SHIPPED)
    for second in (f"{SHIPPED}:0.5", str(other_spelling)):
        argv = ["generate", "x", "--model", str(tmp_path / "no model"), "--lora", str(SHIPPED), "--lora", second]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "is asked for twice" in err and "no model" not in err, err
    argv = ["generate", "x", "--model", str(tmp_path / "no model"), "--lora", str(SHIPPED), "--lora", f"{SHIPPED}:0"]
    assert main(argv) == 2 and "no model" in capsys.readouterr().err  # got as far as the model


def _generate_with_lora(tmp_path: Path, capsys, arg: str) -> tuple[int, str]:
    """``generate --lora ARG`` with a model that does not exist: (exit code, what it said)."""
    from main import main

    code = main(["generate", "x", "--model", str(tmp_path / "no model"), "--out", str(tmp_path / "a.png"),
                 "--lora", arg])  # fmt: skip
    return code, capsys.readouterr().err


def test_the_command_line_names_a_bad_strength_after_a_home_folder_path(tmp_path, capsys, monkeypatch):
    """``--lora=~/style.safetensors:abc`` (no shell expands ``~`` there, nor on Windows; the engine reads ``~``
    itself): the mistake is the strength, as it is said for the same file by its full path (R53: it was "LoRA file
    /home/…/style.safetensors:abc does not exist", a file the user never named)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copyfile(SHIPPED, tmp_path / "style.safetensors")
    code, err = _generate_with_lora(tmp_path, capsys, "~/style.safetensors:abc")
    assert code == 2
    assert "strength 'abc' is not a number" in err, err
    code, err = _generate_with_lora(tmp_path, capsys, "~/style.safetensors:0.5:0.5:0.5")
    assert code == 2
    assert "3 values follow the file name" in err, err


def test_the_command_line_finds_a_lora_file_named_with_a_colon_and_a_number(tmp_path, capsys):
    """A file whose own name is ``style:0.8`` (Linux/macOS allow it; no suffix is asked for, the header says what
    the file is): ``--lora /dir/style:0.8`` names it whole, where /dir/style does not exist (R53: it was split into
    the file "style" at strength 0.8, and refused as a file that does not exist)."""
    named = tmp_path / "style:0.8"
    shutil.copyfile(SHIPPED, named)
    code, err = _generate_with_lora(tmp_path, capsys, str(named))
    assert "does not exist" not in err, err
    assert "no model" in err  # got as far as the model
