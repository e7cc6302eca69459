"""Generative tab: move sliders over the VAE's latent dimensions and see the decoded digit at once;
sample grids with a seed (VAE or conditional GAN); generate a chosen digit; interpolate between
two digits or two uploaded images; upload or draw an image and see it noised and denoised, with
the PSNR of each.

Plain handler functions (tested directly) plus ``build_demo(...) -> gr.Blocks``. Nothing heavy
happens at import time: the models load on first use (or in ``warm_up``), once, and are shared by
all requests. A slider move runs the VAE's TFLite decoder through LiteRT (about 0.05 ms; the
traced Keras decoder when the folder has no TFLite file), never ``model.predict``.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np

from apps.common import (DRAW_AT_ONCE, SAVED_MODELS, SELECT_BRUSH_JS, ModelSlot, card_facts, folder_facts, int_in,
                         metric_line, missing_note, named, request_image, seed_value, tab_header, user_errors)

GENERATIVE_MODELS = SAVED_MODELS / "generative"
TITLE = "Generative"
DEFAULT_VAE_DIR = GENERATIVE_MODELS / "digits_vae"
DEFAULT_GAN_DIR = GENERATIVE_MODELS / "digits_cgan"
DEFAULT_DENOISER_DIR = GENERATIVE_MODELS / "digits_denoiser"
VAE, GAN = "VAE", "Conditional GAN"
DISPLAY = 192  # pixels of one decoded image on the page
SLIDER_RANGE = 3.0
MAX_GRID = 100
MAX_STEPS = 16
DECODER_FILES = ("model_float32.tflite", "model_float16.tflite")
PIXEL_COLUMNS = (("max pixel error vs Keras (0-1)", "max_abs_pixel_error", "{:.2e}"),
                 ("latency p50", "latency_ms_p50", "{:.3f} ms"))
FACTS = {  # test-split card metrics shown in the facts panel, by the service's model slot
    "VAE": {"fid": "FID for digits", "fid_real_vs_real": "real vs real", "fid_noise_baseline": "noise",
            "reconstruction_psnr": "reconstruction PSNR (dB)"},
    "GAN": {"label_accuracy": "samples read as the requested digit", "fid": "FID for digits",
            "fid_real_vs_real": "real vs real", "fid_noise_baseline": "noise",
            "diversity_within_class_ratio": "diversity within a digit / real"},
    "Denoiser": {"psnr_noisy": "PSNR noisy (dB)", "psnr_denoised": "PSNR denoised (dB)",
                 "ssim_noisy": "SSIM noisy", "ssim_denoised": "SSIM denoised"},
}


class GenerativeService:
    """The shipped VAE, conditional GAN and denoiser, and the VAE decoder's TFLite runner."""

    def __init__(self, vae_dir: str | Path | None = None, gan_dir: str | Path | None = None,
                 denoiser_dir: str | Path | None = None):
        self.slots = {"VAE": ModelSlot("VAE", vae_dir or DEFAULT_VAE_DIR),
                      "GAN": ModelSlot("conditional GAN", gan_dir or DEFAULT_GAN_DIR),
                      "Denoiser": ModelSlot("Denoiser", denoiser_dir or DEFAULT_DENOISER_DIR)}
        self._decoder = None
        self._latent_dim: int | None = None
        self._examples: dict[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def vae(self):
        return self.slots["VAE"].load()

    def gan(self):
        return self.slots["GAN"].load()

    def denoiser(self):
        return self.slots["Denoiser"].load()

    def latent_dim(self) -> int:
        """The VAE's latent size from its card (read once, no model load), 8 while the folder is missing."""
        from toolkit.errors import ToolkitError
        from toolkit.storage import read_card

        if self._latent_dim is None:
            try:
                self._latent_dim = int(read_card(self.slots["VAE"].directory)["config"]["latent_dim"])
            except (ToolkitError, KeyError):
                return 8
        return self._latent_dim

    def decoder(self):
        """A callable z (N, latent_dim) -> raw pixels: the VAE's TFLite decoder when exported."""
        if self._decoder is None:
            vae = self.vae()
            with self._lock:
                if self._decoder is None:
                    from toolkit.generative import TFLiteImageModel

                    files = [self.slots["VAE"].directory / f for f in DECODER_FILES]
                    path = next((f for f in files if f.is_file()), None)
                    self._decoder = (TFLiteImageModel(path, card={}).predict if path is not None else vae.decode)
        return self._decoder

    def examples(self) -> dict[int, np.ndarray]:
        """The first image of each digit in the digits test split (at the VAE's size)."""
        if self._examples is None:
            from toolkit.generative import digits_splits

            test = digits_splits(self.vae().input_shape_[:2]).test
            self._examples = {d: test.x[np.flatnonzero(test.y == d)[0]] for d in range(10)}
        return self._examples

    def warm_up(self) -> None:
        """Load what the sliders need now, not on the first move; a missing model is left to the
        page's note and each request's message."""
        from toolkit.errors import ToolkitError

        try:
            self.decoder()(np.zeros((1, self.latent_dim()), np.float32))
        except ToolkitError:
            pass


@functools.lru_cache(maxsize=4)
def shared_service(vae_dir: str | None = None, gan_dir: str | None = None,
                   denoiser_dir: str | None = None) -> GenerativeService:
    """One service per set of folders, so rebuilding the app does not reload models. Models load on
    first use (``warm_up`` loads them ahead: ``apps.main.launch`` runs it in the background)."""
    service = GenerativeService(vae_dir, gan_dir, denoiser_dir)
    return service


def _display(image: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    """One raw-pixel image as uint8 RGB scaled up (nearest) to about ``size`` pixels."""
    from toolkit.explain import to_display_rgb

    return to_display_rgb(image, size)


def _check_seed(seed: Any) -> int:
    return seed_value(seed)


def _digit(value: Any) -> int:
    from toolkit.errors import DataError

    try:
        digit = int(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"Expected a digit 0-9. Received {value!r}.") from None
    if not 0 <= digit <= 9:
        raise DataError(f"Expected a digit 0-9. Received {digit}.")
    return digit


# ---------------------------------------------------------------------- handlers


@user_errors
def decode_latent(service: GenerativeService, *values: float) -> np.ndarray:
    """The VAE decoder's image for the slider values (one per latent dimension)."""
    from toolkit.errors import DataError

    z = np.asarray([0.0 if v is None else v for v in values], dtype=np.float32)
    if z.shape != (service.latent_dim(),) or not np.all(np.isfinite(z)):
        raise DataError(f"Expected {service.latent_dim()} finite latent values. Received {list(values)}.")
    return _display(service.decoder()(z[None])[0])


@user_errors
def encode_digit(service: GenerativeService, digit: Any) -> list[float]:
    """Slider values at the VAE's encoding of a test image of ``digit`` (a start for exploring)."""
    z = service.vae().encode(service.examples()[_digit(digit)])[0]
    return [float(np.clip(v, -SLIDER_RANGE, SLIDER_RANGE)) for v in z]


@user_errors
def sample_grid(service: GenerativeService, model: str, n: Any, seed: Any) -> tuple[np.ndarray, str]:
    """``n`` samples of the VAE or the conditional GAN (every digit in turn) with ``seed``."""
    from toolkit.errors import DataError
    from toolkit.generative.common import image_grid

    n = int_in(n, "samples", 1, MAX_GRID, default=0)
    seed = _check_seed(seed)

    if model == GAN:
        gan = service.gan()
        images = gan.generate(n, seed=seed)
        note = f"{n} samples of the conditional GAN (digits 0-9 in turn), seed {seed}."
    elif model == VAE:
        images = service.vae().generate(n, seed=seed)
        note = f"{n} samples of the VAE (z from N(0, I)), seed {seed}."
    else:
        raise DataError(f"Unknown model {model!r}. Choose {VAE!r} or {GAN!r}.")
    return image_grid(images, cols=10 if model == GAN else None), note


@user_errors
def generate_digit(service: GenerativeService, digit: Any, n: Any, seed: Any) -> tuple[np.ndarray, str]:
    """``n`` samples of one digit from the conditional GAN, and how many of them the digits
    classifier recognises as that digit."""
    from toolkit.generative.common import image_grid
    from toolkit.generative.metrics import digits_judge

    digit, seed, n = _digit(digit), _check_seed(seed), int_in(n, "samples", 1, MAX_GRID, default=0)
    images = service.gan().generate(n, label=str(digit), seed=seed)
    seen = digits_judge().labels(images)
    note = (f"The digits classifier reads **{int(np.sum(seen == digit))} of {n}** as {digit}"
            + ("." if np.all(seen == digit) else f" (others: {sorted(set(seen[seen != digit].tolist()))})."))
    return image_grid(images, cols=min(n, 8)), note


def _endpoint(service: GenerativeService, upload: Any, digit: Any) -> np.ndarray:
    """An interpolation end: the uploaded image (made to look like the digits) or a test digit."""
    if upload:
        return request_image(upload, digit_like=service.vae().input_meta_.get("polarity") == "light_on_dark")
    return service.examples()[_digit(digit)]


@user_errors
def interpolate(service: GenerativeService, digit_a: Any, digit_b: Any, steps: Any, upload_a: Any = None,
                upload_b: Any = None) -> np.ndarray:
    """A strip of VAE decodings along the line between the encodings of two digits or images."""
    from toolkit.generative.common import image_grid

    steps = int_in(steps, "steps", 2, MAX_STEPS, default=0)
    vae = service.vae()
    strip = vae.interpolate(_endpoint(service, upload_a, digit_a), _endpoint(service, upload_b, digit_b), steps)
    return image_grid(strip, cols=steps, width=64 * steps)


@user_errors
def denoise(service: GenerativeService, upload: Any, sketch: Any, noise: Any, noise_type: str,
            seed: Any = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The image (as the model sees it), with noise added, and denoised; PSNR of each against it."""
    from toolkit.errors import DataError
    from toolkit.generative.metrics import psnr, ssim

    den = service.denoiser()
    image = request_image(upload, sketch, digit_like=den.input_meta_.get("polarity") == "light_on_dark")
    try:
        level = float(noise)
    except (TypeError, ValueError):
        raise DataError(f"Expected a noise level. Received {noise!r}.") from None
    clean = den.model_images(image)
    try:
        noisy = den.add_noise(clean, level, noise_type, seed=_check_seed(seed))
    except ValueError as exc:  # an unknown noise type or level: say so in the page
        raise DataError(str(exc)) from exc
    restored = den.predict(noisy)
    note = (f"PSNR noisy **{psnr(clean, noisy):.1f} dB** -> denoised **{psnr(clean, restored):.1f} dB**; "
            f"SSIM {ssim(clean, noisy):.3f} -> {ssim(clean, restored):.3f} ({noise_type}, level {level:g}, "
            f"on the 0-1 scale; the model was trained on {den.config.noise_type} {den.config.noise:g}).")
    return _display(clean[0]), _display(noisy[0]), _display(restored[0]), note


def _facts(slot: ModelSlot, shown: dict[str, str], card: dict) -> str:
    metrics = card.get("metrics") or {}
    lines = [f"Images {card['image']['shape']} raw pixels 0-255 ({card['task']} task)."]
    lines += metric_line(metrics, [(name, "test_" + key) for key, name in shown.items()], "Test split: ")
    return card_facts(card, slot.name, lines, PIXEL_COLUMNS)


def model_facts(service: GenerativeService) -> str:
    """Markdown from each card: what it is, its measured quality, its TFLite files."""
    return "\n\n".join(folder_facts(slot.name, slot.directory, functools.partial(_facts, slot, FACTS[key]))
                         for key, slot in service.slots.items())


# ---------------------------------------------------------------------- UI


def build_demo(vae_dir: str | Path | None = None, gan_dir: str | Path | None = None,
               denoiser_dir: str | Path | None = None, service: GenerativeService | None = None):
    import gradio as gr

    from toolkit.generative import NOISE_TYPES

    if service is None:
        service = shared_service(*(str(d) if d is not None else None for d in (vae_dir, gan_dir, denoiser_dir)))
    dim = service.latent_dim()
    digits = [str(d) for d in range(10)]
    with gr.Blocks(title="Generative") as demo:
        tab_header("### Generative models\nA VAE, a conditional GAN and a denoising autoencoder trained on "
                   "the digits (16x16).", missing_note({s.name: s.directory for s in service.slots.values()}))
        with gr.Tab("Latent space"):
            with gr.Row():
                with gr.Column():
                    sliders = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.05, label=f"z[{i}]")
                               for i in range(dim)]
                    with gr.Row():
                        start_digit = gr.Dropdown(digits, value="3", label="Start from a test digit")
                        encode_btn = gr.Button("Encode it")
                        reset_btn = gr.Button("Reset to 0")
                with gr.Column():
                    decoded = gr.Image(label="Decoded (VAE decoder, TFLite)", type="numpy", format="png",
                                       height=DISPLAY + 20, interactive=False)
        with gr.Tab("Samples"):
            with gr.Row():
                with gr.Column():
                    grid_model = gr.Radio([VAE, GAN], value=GAN, label="Model")
                    grid_n = gr.Slider(1, MAX_GRID, value=40, step=1, label="Samples")
                    grid_seed = gr.Number(value=0, precision=0, label="Seed")
                    grid_btn = gr.Button("Sample", variant="primary")
                    gr.Markdown("#### One digit (conditional GAN)")
                    digit = gr.Dropdown(digits, value="7", label="Digit")
                    digit_n = gr.Slider(1, 64, value=16, step=1, label="Samples")
                    digit_seed = gr.Number(value=0, precision=0, label="Seed")
                    digit_btn = gr.Button("Generate this digit", variant="primary")
                with gr.Column():
                    grid = gr.Image(label="Samples", type="numpy", interactive=False)
                    grid_note = gr.Markdown()
        with gr.Tab("Interpolation"):
            with gr.Row():
                digit_a = gr.Dropdown(digits, value="1", label="From digit")
                digit_b = gr.Dropdown(digits, value="7", label="To digit")
                steps = gr.Slider(2, MAX_STEPS, value=10, step=1, label="Steps")
            with gr.Row():
                upload_a = gr.File(label="...or upload the first image", type="filepath", file_types=["image"])
                upload_b = gr.File(label="...and the second", type="filepath", file_types=["image"])
            interp_btn = gr.Button("Interpolate (VAE)", variant="primary")
            strip = gr.Image(label="Decoded along the line between the two encodings", type="numpy",
                             interactive=False)
        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Upload an image", type="filepath", file_types=["image"])
                    sketch = gr.Sketchpad(label="...or draw a digit", type="numpy", image_mode="RGBA",
                                          canvas_size=(280, 280), elem_classes=[DRAW_AT_ONCE],
                                          brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"))
                    noise = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Noise (0-1 scale)")
                    noise_type = gr.Radio(list(NOISE_TYPES), value="gaussian", label="Noise type")
                    noise_seed = gr.Number(value=0, precision=0, label="Noise seed")
                    denoise_btn = gr.Button("Add noise and denoise", variant="primary")
                with gr.Column():
                    gr.Markdown("Clean (at the model's size), noisy and denoised:")
                    with gr.Row():
                        clean_img = gr.Image(label="Clean", type="numpy", interactive=False)
                        noisy_img = gr.Image(label="Noisy", type="numpy", interactive=False)
                        restored_img = gr.Image(label="Denoised", type="numpy", interactive=False)
                    denoise_note = gr.Markdown()
        with gr.Accordion("Model facts (from card.json)", open=False):
            gr.Markdown(model_facts(service))

        decode = named(decode_latent, service, "decode_latent")
        # One event for every slider: what a slider move calls is the API endpoint /decode_latent.
        gr.on([slider.input for slider in sliders], decode, sliders, [decoded], api_name="decode_latent",
              trigger_mode="always_last", show_progress="hidden")
        reset_btn.click(lambda: [0.0] * dim, None, sliders, api_name=False).then(
            decode, sliders, [decoded], api_name=False, show_progress="hidden")
        encode_btn.click(named(encode_digit, service, "encode_digit"), [start_digit], sliders,
                         api_name="encode_digit").then(decode, sliders, [decoded], api_name=False)
        grid_btn.click(named(sample_grid, service, "sample_grid"), [grid_model, grid_n, grid_seed],
                       [grid, grid_note], api_name="sample_grid")
        digit_btn.click(named(generate_digit, service, "generate_digit"), [digit, digit_n, digit_seed],
                        [grid, grid_note], api_name="generate_digit")
        interp_btn.click(named(interpolate, service, "interpolate"), [digit_a, digit_b, steps, upload_a, upload_b],
                         [strip], api_name="interpolate")
        denoise_btn.click(named(denoise, service, "denoise"), [upload, sketch, noise, noise_type, noise_seed],
                          [clean_img, noisy_img, restored_img, denoise_note], api_name="denoise")
        # A result never stays beside inputs it does not match.
        denoised = [clean_img, noisy_img, restored_img, denoise_note]
        for event in (upload.change, sketch.change, noise.input, noise_type.input, noise_seed.input):
            event(lambda: (None, None, None, ""), None, denoised, api_name=False, queue=False)
        for event in (digit_a.input, digit_b.input, steps.input, upload_a.change, upload_b.change):
            event(lambda: None, None, [strip], api_name=False, queue=False)
        demo.load(decode, sliders, [decoded], api_name=False)
        demo.load(None, None, None, js=SELECT_BRUSH_JS, api_name=False)  # the sketchpad draws at once
    return demo


def warm_up(vae_dir: str | Path | None = None, gan_dir: str | Path | None = None,
            denoiser_dir: str | Path | None = None) -> None:
    """Load the tab's models ahead of the first request (``apps.main.launch`` runs it in the background)."""
    shared_service(*(str(d) if d is not None else None for d in (vae_dir, gan_dir, denoiser_dir))).warm_up()
