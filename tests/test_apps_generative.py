"""The generative tab: handlers called directly on the shipped models, and the launched tab over
HTTP (a latent slider move, as the browser sends it) and through gradio_client."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import REPO, write_image

gr = pytest.importorskip("gradio")

from apps import generative  # noqa: E402

SHIPPED = REPO / "saved_models" / "generative"


@pytest.fixture(scope="module")
def service():
    for name in ("digits_vae", "digits_cgan", "digits_denoiser"):
        if not (SHIPPED / name / "card.json").is_file():
            pytest.skip(f"saved_models/generative/{name} is missing; run `make models`")
    return generative.shared_service()


def test_sliders_decode_with_the_tflite_decoder(service):
    dim = service.latent_dim()
    assert dim == 8
    from toolkit.generative import TFLiteImageModel

    assert isinstance(service.decoder().__self__, TFLiteImageModel)
    origin = generative.decode_latent(service, *[0.0] * dim)
    moved = generative.decode_latent(service, *([2.5] + [0.0] * (dim - 1)))
    assert origin.dtype == np.uint8 and origin.shape[0] >= generative.DISPLAY - 16 and origin.shape[-1] == 3
    assert np.abs(origin.astype(int) - moved).mean() > 1  # the first dimension changes the digit
    expected = service.vae().decode(np.zeros((1, dim), np.float32))[0]
    from toolkit.explain import to_display_rgb

    assert np.abs(to_display_rgb(expected, generative.DISPLAY).astype(int) - origin).max() <= 6  # TFLite ~ Keras
    with pytest.raises(gr.Error, match="Expected 8 finite latent values"):
        generative.decode_latent(service, *[0.0] * (dim - 1))
    values = generative.encode_digit(service, "3")
    assert len(values) == dim and all(-3 <= v <= 3 for v in values)


def test_sample_grid_and_one_digit(service):
    grid, note = generative.sample_grid(service, generative.GAN, 20, 0)
    assert grid.dtype == np.uint8 and "conditional GAN" in note
    again, _ = generative.sample_grid(service, generative.GAN, 20, 0)
    np.testing.assert_array_equal(grid, again)
    grid, note = generative.sample_grid(service, generative.VAE, 9, 3)
    assert "VAE" in note
    grid, note = generative.generate_digit(service, "7", 16, 0)
    seen = int(note.split("**")[1].split()[0])
    assert seen >= 13, note  # the shipped cGAN draws recognisable 7s
    for args, message in (((generative.GAN, 0, 0), "1 to 100 samples"), (("Diffusion", 4, 0), "Unknown model"),
                          ((generative.GAN, 4, -1), "seed"), ((generative.GAN, 4, "abc"), "seed as a whole number")):
        with pytest.raises(gr.Error, match=message):
            generative.sample_grid(service, *args)
    with pytest.raises(gr.Error, match="digit 0-9"):
        generative.generate_digit(service, "12", 4, 0)


def test_interpolation_between_digits_and_uploads(service, tmp_path):
    strip = generative.interpolate(service, "1", "7", 6)
    assert strip.dtype == np.uint8 and strip.shape[1] > 5 * strip.shape[0] / 2
    a = np.zeros((40, 40, 3), np.uint8)
    a[5:35, 18:22] = 255
    b = np.zeros((40, 40, 3), np.uint8)
    b[8:32, 8:32] = 255
    b[14:26, 14:26] = 0
    uploaded = generative.interpolate(service, "1", "7", 4, str(write_image(tmp_path / "a.png", a)),
                                      str(write_image(tmp_path / "b.png", b)))
    assert uploaded.shape[0] == generative.interpolate(service, "1", "7", 4).shape[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no image")
    with pytest.raises(gr.Error, match="not a readable image"):
        generative.interpolate(service, "1", "7", 4, str(bad), None)
    with pytest.raises(gr.Error, match="2 to 16 steps"):
        generative.interpolate(service, "1", "7", 40)


def test_denoise_an_upload_and_a_drawing(service, digits_png):
    clean, noisy, restored, note = generative.denoise(service, str(digits_png[0][0]), None, 0.3, "gaussian", 0)
    psnr_noisy, psnr_denoised = (float(v) for v in re.findall(r"\*\*([\d.]+) dB\*\*", note))
    assert psnr_denoised > psnr_noisy + 3 and clean.shape == noisy.shape == restored.shape
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[40:240, 125:155] = (0, 0, 0, 255)
    sketch = {"composite": canvas, "background": None, "layers": []}
    *_, note = generative.denoise(service, None, sketch, 0.2, "salt_and_pepper", 1)
    assert "salt_and_pepper" in note
    with pytest.raises(gr.Error, match="No image received"):
        generative.denoise(service, None, None, 0.3, "gaussian", 0)
    with pytest.raises(gr.Error, match="Valid types"):
        generative.denoise(service, str(digits_png[0][0]), None, 0.3, "speckle", 0)


def test_missing_models_are_a_message(tmp_path):
    missing = generative.GenerativeService(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    assert "Model not available" in generative.model_facts(missing)
    with pytest.raises(gr.Error, match="make models"):
        generative.decode_latent(missing, *[0.0] * 8)
    with pytest.raises(gr.Error, match="make models"):
        generative.sample_grid(missing, generative.GAN, 4, 0)
    missing.warm_up()  # a missing model does not stop the tab from being built


def test_launched_tab_over_http(service):
    import httpx
    from gradio_client import Client

    from benchmarks.common import rest_event

    demo = generative.build_demo(service=service)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=None)
    try:
        base = demo.local_url.rstrip("/")
        with httpx.Client(timeout=30) as http:
            event, payload = rest_event(http, base, "decode_latent", [0.5] * 8)
            assert event == "complete" and payload[0]["url"].endswith(".png")
            event, payload = rest_event(http, base, "decode_latent", [0.5] * 7)
            assert event == "error"
        client = Client(demo.local_url, verbose=False, ssl_verify=False)
        _, note = client.predict("7", 8, 0, api_name="/generate_digit")
        assert "of 8** as 7" in note
    finally:
        demo.close()
