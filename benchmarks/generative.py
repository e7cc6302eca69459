"""Generative benchmarks: sample quality of the shipped VAE and conditional GAN (FID for digits
beside real-vs-real and noise, label accuracy, diversity), the denoiser's PSNR/SSIM gain, the
TFLite files' agreement with Keras, and the latent-slider demo over HTTP.

Every FID is computed on 360 images per set (the digits test split's size): samples, the train
images (real vs real) and uniform noise, each against the 360 test images.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .common import BrowserSession, p50_ms, rest_event, target

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "generative"
NOISE_SHARE_GOAL = 0.10  # "well below the noise baseline": at most a tenth of it


def _load(name: str):
    from toolkit import load

    return load(SHIPPED / name)


def quality() -> dict:
    """Shipped models on the digits test split."""
    vae, gan, den = _load("digits_vae"), _load("digits_cgan"), _load("digits_denoiser")
    v = vae.evaluate("digits")
    g = gan.evaluate("digits")
    d = den.evaluate("digits", noise=0.3, noise_type="gaussian")
    sp = den.evaluate("digits", noise=0.2, noise_type="salt_and_pepper")
    noise = g["fid_noise_baseline"]
    worst = min(g["label_accuracy_per_class"].items(), key=lambda kv: kv[1])
    rows = [
        target("cGAN: samples the digits classifier labels as the requested digit", g["label_accuracy"], ">= 0.90",
               g["label_accuracy"] >= 0.90,
               note=f"360 samples, 36 per digit; weakest digit {worst[0]}: {worst[1]:.2f}"),
        target("FID for digits: cGAN samples vs test", g["fid"], f"<= {NOISE_SHARE_GOAL:g} x noise baseline",
               g["fid"] <= NOISE_SHARE_GOAL * noise, note=f"{g['fid'] / noise:.3f} x noise"),
        target("FID for digits: VAE samples vs test", v["fid"], f"<= {NOISE_SHARE_GOAL:g} x noise baseline",
               v["fid"] <= NOISE_SHARE_GOAL * noise, note=f"{v['fid'] / noise:.3f} x noise"),
        target("FID for digits: real vs real (train vs test)", g["fid_real_vs_real"], "reference", True),
        target("FID for digits: uniform noise vs test (noise baseline)", noise, "reference", True),
        target("FID for digits: VAE reconstructions of the test images", v["fid_reconstructions"], "reference", True),
        target("cGAN: sample diversity / real diversity (pairwise RMS)", g["diversity_ratio"], "reference", True,
               note=f"within a digit: {g['diversity_within_class_ratio']:.2f}; mode collapse: {g['mode_collapse']}"),
        target("VAE: sample diversity / real diversity (pairwise RMS)", v["diversity_ratio"], "reference", True,
               note=f"{v['distinct_labels']} digits seen; mode collapse: {v['mode_collapse']}"),
        target("denoiser: PSNR gain at Gaussian sigma 0.3 (digits test split)", d["psnr_gain_db"], ">= 6 dB",
               d["psnr_gain_db"] >= 6, "dB", note=f"{d['psnr_noisy']:.1f} -> {d['psnr_denoised']:.1f} dB; SSIM "
                                                f"{d['ssim_noisy']:.2f} -> {d['ssim_denoised']:.2f}"),
        target("denoiser: PSNR gain on salt-and-pepper 0.2 (not trained on it)", sp["psnr_gain_db"], "reference",
               True, "dB", note=f"{sp['psnr_noisy']:.1f} -> {sp['psnr_denoised']:.1f} dB"),
    ]
    for name, model in (("VAE", vae), ("cGAN", gan), ("denoiser", den)):
        rows.append(target(f"{name} recipe: training time", float(model.train_seconds_ or 0), "reference", True,
                           "s", note=model.command_ or ""))
    return {"rows": rows, "vae": v, "gan": g, "denoiser": {"gaussian_0.3": d, "salt_and_pepper_0.2": sp}}


def tflite() -> dict:
    """Every shipped TFLite file against Keras on fresh inputs (largest pixel error, 0-1 scale)."""
    from toolkit.generative import TFLiteImageModel, add_noise, digits_splits
    from toolkit.generative.metrics import label_accuracy, psnr

    rng = np.random.default_rng(123)
    test = digits_splits().test
    rows, details = [], {}
    for name in ("digits_vae", "digits_cgan", "digits_denoiser"):
        task = _load(name)
        for entry in task.tflite_:
            lite = TFLiteImageModel(SHIPPED / name / entry["file"])
            if lite.kind == "denoiser":
                noisy = add_noise(test.x, 0.3, seed=7)
                keras_out, lite_out = task.predict(noisy), lite.predict(noisy)
                inputs = {"pixels": noisy[:1]}
            else:
                z = rng.standard_normal((1000, lite.latent_dim_)).astype(np.float32)
                labels = np.arange(1000) % 10 if lite.conditional_ else None
                keras_out = task.decode(z) if lite.kind == "decoder" else task.predict(z, labels)
                lite_out = lite.predict(z, labels)
                inputs = {"z": z[:1]} if lite.kind == "decoder" else {"noise": z[:1], **(
                    {"label": labels[:1].astype(np.int32)} if lite.conditional_ else {})}
            error = float(np.abs(lite_out - keras_out).max() / 255)
            quant = entry["quantization"]
            goal = 0.02 if quant == "float16" and lite.kind != "denoiser" else None
            rows.append(target(f"{name} {entry['file']} ({lite.kind}): max abs pixel error vs Keras", error,
                               "<= 0.02" if goal else "reference", error <= goal if goal else True,
                               note=f"{len(keras_out)} outputs; {entry['size_bytes'] / 1024:.0f} KiB"))
            extra = {}
            if lite.kind == "denoiser":
                extra["psnr_denoised"] = psnr(test.x, lite_out)
            if lite.conditional_:
                extra["label_accuracy"] = label_accuracy(lite_out, labels)
                rows.append(target(f"{name} {entry['file']}: samples labelled as requested", extra["label_accuracy"],
                                   "reference", True, note="the phone's file judged like the Keras model"))
            ms = p50_ms(lambda: lite.run(**inputs), runs=200, warmup=20)
            rows.append(target(f"{name} {entry['file']}: one image p50", ms, "reference", True, "ms"))
            details[f"{name}/{entry['file']}"] = {"max_abs_pixel_error": error, "latency_ms_p50": ms, **extra}
    return {"rows": rows, "files": details}


def explanations() -> dict:
    """Default-budget explanations of the shipped models: the discriminator's real/fake output
    (SHAP, LIME) for real test digits, and the VAE's latent traversals; whole calls, timed."""
    import time
    import warnings

    from toolkit.generative import digits_splits

    test = digits_splits().test
    images = [test.x[i] for i in range(6)]
    gan, vae = _load("digits_cgan"), _load("digits_vae")
    calls = {"cGAN discriminator shap": lambda img: gan.explain(img, method="shap"),
             "cGAN discriminator lime": lambda img: gan.explain(img, method="lime"),
             "VAE latent traversal (8 x 9 decodings)": lambda img: vae.explain(img, method="traversal")}
    rows = []
    for name, call in calls.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            call(images[0])
            cold = time.perf_counter() - start
            seconds = []
            for img in images[1:]:
                start = time.perf_counter()
                call(img)
                seconds.append(time.perf_counter() - start)
        p50 = float(np.median(seconds))
        rows.append(target(f"explain one image: {name} p50 (first call {cold:.2f} s)", p50, "<= 5 s", p50 <= 5, "s"))
    return {"rows": rows}


def demo_latency() -> dict:
    """A latent slider move as a user makes it: `toolkit serve` in its own process, and the
    page's session sending the event to the queue and reading the result from its event stream."""
    import socket
    import subprocess
    import sys

    import httpx

    from toolkit.storage import read_card

    dim = int(read_card(SHIPPED / "digits_vae")["config"]["latent_dim"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", "--port", str(port)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    rng = np.random.default_rng(0)
    rows = []
    try:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 300
            while True:  # the server loads every tab's models first
                try:
                    page = BrowserSession(http, base)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"toolkit serve did not start (exit status {server.poll()})") from None
                    time.sleep(1)

            def call(api, data):
                event, payload = page.call(api, data)
                assert event == "complete", payload

            ms = p50_ms(lambda: call("decode_latent", rng.uniform(-3, 3, dim).round(2).tolist()), runs=60, warmup=5)
            floor = p50_ms(lambda: call("encode_digit", ["3"]), runs=40, warmup=5)
            rows.append(target("demo: latent slider move re-renders the VAE decoding, p50", ms, "<= 50 ms",
                               ms <= 50, "ms", note=f"toolkit serve in its own process; the page's session, event "
                                                    f"queued and read from its stream; TFLite decoder; a request "
                                                    f"with no image took {floor:.0f} ms"))
            rows.append(target("demo: a request with no image (encode a digit to the sliders), p50", floor,
                               "reference", True, "ms", note="Gradio's round trip on this machine now"))
            ms = p50_ms(lambda: call("sample_grid", ["Conditional GAN", 40, 0]), runs=20, warmup=2)
            rows.append(target("demo: 40-sample cGAN grid, p50", ms, "reference", True, "ms"))
            ms = p50_ms(lambda: call("interpolate", ["1", "7", 10, None, None]), runs=20, warmup=2)
            rows.append(target("demo: 10-step VAE interpolation, p50", ms, "reference", True, "ms"))
            # A REST call (/gradio_api/call) opens a new session each time: every component's state
            # is copied per request, which the page does once.
            ms = p50_ms(lambda: rest_event(http, base, "decode_latent", [0.0] * dim), runs=20, warmup=2)
            rows.append(target("demo: latent slider move as a REST API call (a new session per call), p50", ms,
                               "reference", True, "ms"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"rows": rows}


if __name__ == "__main__":
    print(json.dumps(quality()["rows"], indent=2))
