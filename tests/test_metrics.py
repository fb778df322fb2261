from PIL import Image, ImageDraw

from gpu.metrics import psnr, ssim


def test_identical_images_score_perfectly_and_noise_lowers_scores():
    a = Image.new("RGB", (32, 32), "navy")
    ImageDraw.Draw(a).ellipse((8, 8, 24, 24), fill="red")
    b = a.copy()
    ImageDraw.Draw(b).rectangle((0, 0, 5, 5), fill="white")
    assert psnr(a, a) == 100.0 and abs(ssim(a, a) - 1.0) < 1e-12
    assert 10 < psnr(a, b) < 40 and ssim(a, b) < 0.99
    assert psnr([a, a], [a, b]) > psnr(a, b)  # the mean over pairs
