"""R59 review: A1111/Forge text whose settings are read wrong or dropped without a word."""

from __future__ import annotations

from gpu.generation.png_metadata import read_parameters

# A Forge FLUX txt2img with hires fix, as Forge writes it: Size is the first pass's, the image is twice that.
FORGE_HIRES = (
    "a lighthouse at dusk\n"
    "Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1234, "
    "Size: 896x1152, Model hash: 0123456789, Model: flux1-dev-bnb-nf4-v2, Denoising strength: 0.45, "
    "Hires upscale: 2, Hires steps: 10, Hires upscaler: 4x-UltraSharp, Version: f2.0.1v1.10.1"
)
# An A1111/Forge img2img: the image was made from another picture, not from noise.
FORGE_IMG2IMG = (
    "a lighthouse at dusk\n"
    "Steps: 20, Sampler: Euler, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1234, Size: 896x1152, "
    "Model: flux1-dev-bnb-nf4-v2, Denoising strength: 0.55, Version: f2.0.1v1.10.1"
)


def test_hires_fix_is_said_not_silently_dropped() -> None:
    settings, problems = read_parameters(FORGE_HIRES)
    assert (settings["width"], settings["height"]) == (896, 1152)  # the first pass's size, as Size says
    # the file is 1792x2304: the app cannot upscale, so the user must be told the restored image is not this one
    assert any("Hires" in p for p in problems), problems


def test_img2img_is_said_not_silently_dropped() -> None:
    _settings, problems = read_parameters(FORGE_IMG2IMG)
    assert any("Denoising strength" in p for p in problems), problems


def test_lone_cr_line_ends_are_lines() -> None:
    text = "a cat\rNegative prompt: ugly\rSteps: 20, Sampler: Euler, CFG scale: 3.5, Seed: 7, Size: 512x512"
    settings, problems = read_parameters(text)
    assert (settings.get("prompt"), settings.get("negative_prompt"), settings.get("steps")) == ("a cat", "ugly", 20)


def test_a_hires_pass_at_the_first_pass_size_is_said_as_a_second_pass_not_a_larger_one() -> None:
    """"Hires upscale: 1" (a second pass at the same size, to add detail) was said "its hires fix (…: a second pass
    at a larger size)", as ComfyUI's graphs were until their sizes were followed."""
    for field in ("Hires upscale: 1", "Hires upscale: 0.5", "Hires resize: 896x1152"):
        _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", field))
        assert [p for p in problems if "larger" in p or "second pass" in p] == [
            f"its second pass ({field.replace(':', '')}) is not restored: new images are its first pass, "
            "896x1152"], problems
    for field in ("Hires upscale: 1.5", "Hires resize: 1792x2304", "Hires resize: 0x2304", "Hires upscale: x"):
        _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", field))
        assert any(f"its hires fix ({field.replace(':', '')}: a second pass at a larger size)" in p
                   for p in problems), (field, problems)  # fmt: skip


def test_a_hires_resize_larger_on_one_side_and_smaller_on_the_other_is_said_a_different_size() -> None:
    """"Hires resize: 1792x1024" after a first pass of 896x1152 (wider, less tall) was said "a second pass at a
    larger size"; it is another size."""
    _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", "Hires resize: 1792x1024"))
    assert [p for p in problems if "Hires" in p] == [
        "its hires fix (Hires resize 1792x1024: a second pass at a different size) is not restored: new images are "
        "its first pass, 896x1152"], problems  # fmt: skip


def test_a_hires_resize_after_a_first_pass_of_unknown_size_claims_no_size() -> None:
    """No Size in the text (the first pass's size not known): "Hires resize: 1024x1024" was said "a second pass at a
    larger size"; nothing says whether it is. A "Hires upscale" factor still says it."""
    text = FORGE_HIRES.replace("Size: 896x1152, ", "")
    _settings, problems = read_parameters(text.replace("Hires upscale: 2", "Hires resize: 1024x1024"))
    assert [p for p in problems if "Hires" in p] == [
        "its second pass (Hires resize 1024x1024: its size beside the first pass's not known) is not restored: new "
        "images are its first pass, its Size"], problems  # fmt: skip
    _settings, problems = read_parameters(text)
    assert any("its hires fix (Hires upscale 2: a second pass at a larger size)" in p for p in problems), problems


def test_a_hires_resize_of_0x0_names_the_upscale_that_set_the_size() -> None:
    """"Hires resize: 0x0" beside "Hires upscale: 2" (a resize of no size of its own: A1111 goes by the upscale)
    was named as the hires fix, "its hires fix (Hires resize 0x0: …)", and beside "Hires upscale: 0.5" as "its
    second pass (Hires resize 0x0)", the factor that made the size unsaid. The upscale is named."""
    first = "is not restored: new images are its first pass, 896x1152"
    for fields in ("Hires resize: 0x0, Hires upscale: 2", "Hires upscale: 2, Hires resize: 0x0"):
        _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", fields))
        assert [p for p in problems if "Hires" in p] == [
            f"its hires fix (Hires upscale 2: a second pass at a larger size) {first}"], problems  # fmt: skip
    _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", "Hires upscale: 0.5, Hires "
                                                              "resize: 0x0"))  # fmt: skip
    assert [p for p in problems if "Hires" in p] == [f"its second pass (Hires upscale 0.5) {first}"], problems


def test_hires_fields_without_an_upscale_or_resize_are_a_hires_pass_not_an_img2img() -> None:
    """A hires fix written without "Hires upscale" or "Hires resize" ("Hires upscaler: None", "Hires steps: 10",
    its "Denoising strength" the second pass's) was said "it was made from another picture (img2img, Denoising
    strength 0.45) … new images start from noise": the Hires fields say the image was a txt2img with a second pass.
    That pass is said, by the fields that show it, its size not known (the file does not tell it)."""
    text = FORGE_HIRES.replace("Hires upscale: 2, ", "").replace("4x-UltraSharp", "None")
    _settings, problems = read_parameters(text)
    assert problems == [
        "its second pass (Hires steps 10, Hires upscaler None: its size beside the first pass's not known) is not "
        "restored: new images are its first pass, 896x1152"], problems  # fmt: skip (was: an img2img)
    _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", "Hires resize: 0x0"))
    assert [p for p in problems if "Hires" in p] == [
        "its second pass (Hires resize 0x0, Hires steps 10, Hires upscaler 4x-UltraSharp: its size beside the first "
        "pass's not known) is not restored: new images are its first pass, 896x1152"], problems  # fmt: skip


def test_a_size_and_a_hires_resize_are_read_by_one_reader() -> None:
    """Size and Hires resize are both "WIDTHxHEIGHT", read by three parsers that did not agree: a Hires resize of
    "1792X2304" or "0 X 0" was read, a Size of "896X1152" was "not WIDTHxHEIGHT" and left out. One reader now."""
    settings, problems = read_parameters(FORGE_HIRES.replace("Size: 896x1152", "Size: 896X1152"))
    assert (settings.get("width"), settings.get("height")) == (896, 1152), problems  # was: left out, said
    for resize, said in (("1792X2304", "Hires resize 1792X2304: a second pass at a larger size"),
                         ("0 X 0", "Hires upscale 2: a second pass at a larger size")):  # fmt: skip
        _settings, problems = read_parameters(FORGE_HIRES.replace("Hires upscale: 2", f"Hires resize: {resize}, "
                                                                  "Hires upscale: 2"))  # fmt: skip
        assert [p for p in problems if "Hires" in p] == [
            f"its hires fix ({said}) is not restored: new images are its first pass, 896x1152"], problems


def _extras_png(path, parameters: str, postprocessing: str):
    """A PNG as A1111/Forge's Extras tab saves an upscaled image: the original's ``parameters``, then what Extras did
    in a ``postprocessing`` chunk and again in an ``extras`` one (``modules/postprocessing.py``)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, text in (("parameters", parameters), ("postprocessing", postprocessing), ("extras", postprocessing)):
        info.add_text(key, text)
    Image.new("RGB", (16, 16)).save(path, pnginfo=info)
    return path


A1111_TXT2IMG = FORGE_IMG2IMG.replace("Denoising strength: 0.55, ", "")
EXTRAS_4X = "Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+"


def test_an_extras_upscale_is_said_as_an_upscale_after_its_pass(tmp_path) -> None:
    """An image upscaled in A1111/Forge's Extras tab keeps the ``parameters`` of the picture it was given, its Size
    that picture's: restored without a word, new images were a quarter of its size. Said in the words of a ComfyUI
    image upscaled after its pass."""
    from gpu.generation.image_metadata import inspect_image

    found = inspect_image(_extras_png(tmp_path / "00001.png", A1111_TXT2IMG, EXTRAS_4X))
    assert (found.settings["width"], found.settings["height"], found.settings["seed"]) == (896, 1152, 1234)
    assert found.problems == [
        "it was upscaled after its pass (Extras: Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+), which "
        "is not restored: new images are its picture before that, 896x1152"]  # fmt: skip (was: [])
    # "Scale to" a size (cropped to fit): said beside Size; to Size itself, no change worth a word
    to = "Postprocess upscale to: 1792x2304, Postprocess crop to: 1792x2304, Postprocess upscaler: 4x-UltraSharp"
    assert inspect_image(_extras_png(tmp_path / "to.png", A1111_TXT2IMG, to)).problems == [
        "it was upscaled after its pass (Extras: Postprocess upscale to 1792x2304, Postprocess crop to 1792x2304, "
        "Postprocess upscaler 4x-UltraSharp), which is not restored: new images are its picture before that, "
        "896x1152"]  # fmt: skip
    same = to.replace("1792x2304", "896x1152")
    assert inspect_image(_extras_png(tmp_path / "same.png", A1111_TXT2IMG, same)).problems == []
    # capped by its "Max side length" below the picture's own: smaller, said "resized"
    capped = f"{EXTRAS_4X}, Max side length: 576"
    assert inspect_image(_extras_png(tmp_path / "capped.png", A1111_TXT2IMG, capped)).problems[0].startswith(
        "it was resized after its pass (Extras: Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+, Max side "
        "length 576)")  # fmt: skip
    # only its faces restored (GFPGAN): no upscale to say
    assert inspect_image(_extras_png(tmp_path / "faces.png", A1111_TXT2IMG, "GFPGAN visibility: 1")).problems == []


def test_an_extras_upscale_of_a_hires_fix_is_said_after_it(tmp_path) -> None:
    """After a hires fix, the Extras upscale is said after it, as ComfyUI's upscale after its last pass is."""
    from gpu.generation.image_metadata import inspect_image

    found = inspect_image(_extras_png(tmp_path / "hires.png", FORGE_HIRES, EXTRAS_4X.replace("4,", "2.0,")))
    assert found.problems == [
        "its hires fix (Hires upscale 2: a second pass at a larger size) and its upscale after it (Extras: Postprocess "
        "upscale by 2.0, Postprocess upscaler R-ESRGAN 4x+) are not restored: new images are its first pass, "
        "896x1152"]  # fmt: skip (was: "its hires fix (…) is not restored: …")
    # to the hires pass's own size (1792x2304): no change
    to = "Postprocess upscale to: 1792x2304, Postprocess upscaler: 4x-UltraSharp"
    assert inspect_image(_extras_png(tmp_path / "same.png", FORGE_HIRES, to)).problems == [
        "its hires fix (Hires upscale 2: a second pass at a larger size) is not restored: new images are its first "
        "pass, 896x1152"]  # fmt: skip
    # an img2img upscaled: both said
    assert inspect_image(_extras_png(tmp_path / "i2i.png", FORGE_IMG2IMG, EXTRAS_4X)).problems == [
        "it was made from another picture (img2img, Denoising strength 0.55), which is not restored: new images start "
        "from noise", "it was upscaled after its pass (Extras: Postprocess upscale by 4, Postprocess upscaler "
        "R-ESRGAN 4x+), which is not restored: new images are its picture before that, 896x1152"]  # fmt: skip
