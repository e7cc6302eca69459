"""The demo in a real browser (Playwright driving the distribution's Chromium): per tab one user
path (upload, draw, type, move a slider, press a button), one bad input with its readable message,
stale outputs cleared when the input changes (and answers still on their way cancelled), and no
console error.

One launched app and one browser for the whole file; models load on first use. Skips (saying why)
only when no Chromium can be found: ``make test`` installs it where it can (``make browser``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading

import numpy as np
import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                     "(pip install playwright; it is in the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: `make browser` installs the "
                                "distribution's (apt-get install chromium, as root)")
TIMEOUT = 120_000  # ms: a model loads on its first use, on a busy two-core machine


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def digit_one() -> bytes:
    canvas = np.full((280, 280, 3), 255, np.uint8)
    canvas[50:230, 125:155] = 0
    return png(canvas)


@pytest.fixture(scope="module")
def app_url():
    from apps.main import serve_in_background

    app = serve_in_background()
    try:
        yield app.local_url
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


#: How Chromium reports a response cut short (the local server under the suite's load closed it
#: early, or Gradio replaced the file while it was being sent).
CUT_TRANSFERS = ("ERR_CONTENT_LENGTH_MISMATCH", "ERR_INCOMPLETE_CHUNKED_ENCODING")
#: The route Gradio serves its output files from (an image of the page being replaced by a new one)
FILE_ROUTE = "/gradio_api/file="


def transport_error(message) -> bool:
    """A console error that is only a cut transfer of a file Gradio serves: the text names a cut
    transfer and the resource is on Gradio's file route. What the page shows is still checked by
    each test; the same error on any other resource (the page's scripts, the API, the queue) and
    every other console error still fail the test."""
    text = message.text
    url = (message.location or {}).get("url", "") if hasattr(message, "location") else ""
    return any(cut in text for cut in CUT_TRANSFERS) and FILE_ROUTE in url


def console_errors(page, also_ignore: tuple[str, ...] = ()) -> list[str]:
    """The list the page's console errors and uncaught page errors go to (a cut transfer of a
    Gradio file aside: :func:`transport_error`; ``also_ignore``: texts a test explains)."""
    errors: list[str] = []

    def on_console(message):
        if message.type == "error" and not transport_error(message) and not any(t in message.text
                                                                                 for t in also_ignore):
            url = (message.location or {}).get("url", "")
            errors.append(f"{message.text} ({url})" if url else message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_only_a_cut_transfer_of_a_gradio_file_is_ignored():
    class Message:
        def __init__(self, text, url):
            self.type, self.text, self.location = "error", text, {"url": url}

    cut = "Failed to load resource: net::ERR_CONTENT_LENGTH_MISMATCH"
    assert transport_error(Message(cut, "http://127.0.0.1:7860/gradio_api/file=/tmp/gradio/ab/image.webp"))
    assert not transport_error(Message(cut, "http://127.0.0.1:7860/assets/index.js"))  # the page's own script
    assert not transport_error(Message(cut, "http://127.0.0.1:7860/gradio_api/queue/data"))
    assert not transport_error(Message("TypeError: x is undefined", "http://127.0.0.1:7860/gradio_api/file=/a.png"))


@pytest.fixture
def page(browser, app_url):
    """A fresh page of the demo; fails the test on any console error or page error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = console_errors(page)
    page.goto(app_url)
    page.get_by_role("tab", name="Vision").wait_for()
    yield page
    context.close()
    assert not errors, f"console errors: {errors}"


class Held:
    """A server-side function whose first call waits for ``gate`` (the server runs in this process);
    later calls run at once. ``entered``: the first call arrived; ``done``: it returned."""

    def __init__(self, fn):
        self.fn = fn
        self.entered, self.gate, self.done = threading.Event(), threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        if self.entered.is_set():
            return self.fn(*args, **kwargs)
        self.entered.set()
        self.gate.wait(60)
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.done.set()


def wait_until(page, event, what: str, seconds: float = 60) -> None:
    """Waits (letting the page run) until the server-side ``event`` is set; fails naming ``what``."""
    for _ in range(int(seconds * 20)):
        if event.is_set():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"no sign of {what} in {seconds:.0f} s")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def error_toast(page, pattern: str) -> str:
    """The text of the error toast matching ``pattern`` (waits for it), then closes the toasts."""
    toast = page.locator(".toast-body").filter(has_text=re.compile(pattern, re.I)).first
    toast.wait_for()
    text = toast.inner_text()
    for close in page.locator(".toast-close").all():
        try:
            close.click(timeout=2000)
        except Exception:
            pass
    return text


def no_code_words(text: str) -> None:
    for word in ("Traceback", "Unexpected error", "UnidentifiedImageError", "Exception", "--"):
        assert word not in text, text


def choose_digits(page) -> None:
    open_tab(page, "Vision")
    page.get_by_label("Model", exact=True).first.click()
    page.get_by_role("option", name="Digits (draw one)").click()


def test_vision_upload_explain_and_a_new_request_clears_the_explanation(page, tmp_path):
    choose_digits(page)
    good = tmp_path / "one.png"
    good.write_bytes(digit_one())
    page.locator("input[type=file]").first.set_input_files(str(good))
    top = page.locator(".output-class, [data-testid=label-output-value]").first
    top.wait_for()
    page.get_by_text(re.compile(r"ms for this prediction")).first.wait_for()
    page.get_by_role("button", name="Explain", exact=True).first.click()
    page.get_by_text(re.compile(r"gradcam.* for class")).first.wait_for()
    page.get_by_role("button", name="Classify", exact=True).first.click()  # a new request: the overlay goes
    page.wait_for_function("() => !document.body.innerText.match(/gradcam.* for class/)")


def test_vision_bad_file_gets_a_readable_message(page, tmp_path):
    choose_digits(page)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    page.locator("input[type=file]").first.set_input_files(str(bad))
    no_code_words(error_toast(page, "image|file"))


def test_nlp_enter_classifies_explain_then_new_text_clears(page):
    open_tab(page, "NLP")
    box = page.get_by_label("Text (Enter classifies)")
    box.fill("great phone, works perfectly")
    box.press("Enter")
    page.get_by_text(re.compile(r"ms for this prediction")).first.wait_for()
    assert "positive" in page.locator(".output-class, [data-testid=label-output-value]").first.inner_text().lower() \
        or page.get_by_text("positive").count() > 0
    page.get_by_role("button", name="Explain", exact=True).first.click()
    explained = page.get_by_text(re.compile(r"LIME.* for class"))
    explained.first.wait_for()
    box.fill("terrible, broke after a day")  # typing: the old answer and highlights go
    page.wait_for_function("() => !document.body.innerText.match(/LIME.* for class/)")
    # a bad input: empty text
    box.fill("   ")
    box.press("Enter")
    no_code_words(error_toast(page, "empty|Enter some text"))


def test_nlp_new_text_cancels_an_explanation_still_on_its_way(page, monkeypatch):
    """The explanation waits (:class:`Held`) while the text changes."""
    import apps.nlp

    held = Held(apps.nlp.run_explanation)
    open_tab(page, "NLP")
    box = page.get_by_label("Text (Enter classifies)")
    box.fill("great phone, works perfectly")
    box.press("Enter")
    page.get_by_text(re.compile(r"ms for this prediction")).first.wait_for()
    monkeypatch.setattr(apps.nlp, "run_explanation", held)
    try:
        page.get_by_role("button", name="Explain", exact=True).first.click()
        wait_until(page, held.entered, "the Explain click reaching the server")
        box.fill("terrible, broke after a day")  # the page clears the old answer...
        page.wait_for_function("() => !document.body.innerText.match(/ms for this prediction/)")
    finally:
        held.gate.set()  # ...and the old text's explanation, finished now, must not show
    wait_until(page, held.done, "the explanation finishing")
    page.wait_for_timeout(2000)
    assert not page.get_by_text(re.compile(r"LIME.* for class")).count()


def test_dates_warn_on_text_that_is_not_a_date(page):
    open_tab(page, "NLP")
    page.get_by_role("tab", name="Dates").click()
    box = page.get_by_label("A date, written any common way")
    box.fill("the 3rd of March 1999")
    box.press("Enter")
    page.get_by_text(re.compile(r"Translated in")).first.wait_for()
    assert page.get_by_label("ISO date (YYYY-MM-DD)").input_value() == "1999-03-03"
    box.fill("hello world")
    box.press("Enter")
    page.get_by_text(re.compile(r"Not a date\?")).first.wait_for()


def test_timeseries_forecast_slider_and_a_missing_upload(page):
    open_tab(page, "Time series")
    page.get_by_role("button", name="Forecast", exact=True).click()
    page.get_by_text(re.compile(r"p50 \*?\*?[-\d]")).first.wait_for()
    page.get_by_role("button", name="Explain", exact=True).last.click()
    page.get_by_text(re.compile(r"SHAP.* for the")).first.wait_for()
    # a new forecast clears the explanation first
    page.get_by_role("button", name="Forecast", exact=True).click()
    page.wait_for_function("() => !document.body.innerText.match(/SHAP.* for the/)")
    # a bad input: "Upload a CSV" with no file
    page.get_by_label("Upload a CSV").first.check()
    page.get_by_role("button", name="Forecast", exact=True).click()
    no_code_words(error_toast(page, "upload|CSV|file"))


def test_timeseries_a_click_during_a_forecast_is_kept_and_a_new_series_drops_the_old_answer(page, monkeypatch):
    """A change of series cancels a forecast still running on the server (its answer belongs to the
    old series), and a Forecast click meanwhile is not dropped (Gradio's default for a pending event).
    The first forecast after the patch waits (:class:`Held`)."""
    from apps.timeseries_service import TimeSeriesService

    held = Held(TimeSeriesService.resolve)
    open_tab(page, "Time series")
    page.get_by_role("button", name="Forecast", exact=True).click()
    page.get_by_text(re.compile(r"p50 \*?\*?[-\d]")).first.wait_for()
    monkeypatch.setattr(TimeSeriesService, "resolve", lambda self, *args, **kwargs: held(self, *args, **kwargs))
    try:
        page.get_by_role("button", name="Forecast", exact=True).click()
        wait_until(page, held.entered, "the Forecast click reaching the server")
        page.get_by_label("Upload a CSV").first.check()
        page.get_by_role("button", name="Forecast", exact=True).click()
        no_code_words(error_toast(page, "upload|CSV|file"))
    finally:
        held.gate.set()  # the old series' forecast finishes now: its answer must not show
    wait_until(page, held.done, "the old forecast finishing")
    page.wait_for_timeout(3000)  # the rest of the forecast (a plot), and the page
    assert not page.get_by_text(re.compile(r"p50 \*?\*?[-\d]")).count()


def test_generative_slider_decodes_and_denoise_needs_an_image(page):
    open_tab(page, "Generative")
    decoded = page.locator("img").filter(has=page.locator("xpath=.")).first
    slider = page.locator("input[type=range]").first
    slider.wait_for()
    slider.fill("1.5")
    slider.dispatch_event("input")
    page.get_by_role("tab", name="Denoise").click()
    page.get_by_role("button", name="Add noise and denoise").click()
    no_code_words(error_toast(page, "image|draw|upload"))
    assert decoded is not None


def test_rl_play_compare_and_switching_agent_clears(page):
    open_tab(page, "RL")
    page.get_by_role("button", name="Compare with a random agent").click()
    page.get_by_text(re.compile(r"random", re.I)).first.wait_for()
    compared = page.get_by_text(re.compile(r"CartPole DQN.*random|random.*CartPole", re.I))
    page.get_by_label("Agent", exact=True).first.click()
    page.get_by_role("option", name="Acrobot DQN").click()
    page.wait_for_timeout(1500)
    assert compared.count() == 0
    page.get_by_role("tab", name="Step through").click()
    page.get_by_role("button", name="Step", exact=True).click()  # no episode yet
    no_code_words(error_toast(page, "Reset|episode"))


def test_make_your_own_sentences_train_show_metrics_download_and_reload(page, tmp_path, monkeypatch):
    from apps import make_your_own

    monkeypatch.setattr(make_your_own, "TRAIN_OPTIONS", {"encoder": "fasttext", "epochs": 3})  # seconds, not minutes
    open_tab(page, "Make your own")
    page.get_by_label("Sentences").check()
    page.get_by_label("Class 1 name").fill("happy")
    page.get_by_label("Sentences, one per line").nth(0).fill("great day\nlove it\nwonderful\nexcellent food\nso happy")
    csv = tmp_path / "sad.csv"  # the second class comes from a CSV of text,label rows
    csv.write_text("text,label\n" + "".join(f"{t},sad\n" for t in ("terrible", "awful service", "broken again",
                                                                      "worst ever", "so bad")))
    page.locator("input[type=file][accept*='.csv']").set_input_files(str(csv))
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"Held-out accuracy \d")).wait_for()
    page.get_by_label("...or a sentence").fill("what a wonderful day")
    page.get_by_role("button", name="Try it", exact=True).click()  # with the phone file (the default)
    page.locator(".block").filter(has_text="Answer").get_by_text(re.compile(r"^(happy|sad)$")).first.wait_for()
    link = page.locator("a[download='my_model.zip']").first  # the file table's link (its text is the size)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "my_model.zip"
    download.value.save_as(saved)
    import zipfile

    assert "model_dynamic.tflite" in zipfile.ZipFile(saved).namelist()
    page.get_by_text("Continue from a zip you downloaded").click()
    page.locator("input[type=file][accept*='.zip']").last.set_input_files(str(saved))
    page.get_by_text(re.compile("Loaded a text classifier with classes happy, sad")).wait_for()


def test_detection_boxes_threshold_refilters_and_a_bad_file(page, tmp_path):
    from conftest import SHARED_DATA

    raccoons = SHARED_DATA / "raccoon" / "images"
    if not raccoons.is_dir():
        pytest.skip("../shared/data/raccoon is not here")
    open_tab(page, "Detection")
    page.get_by_text("Object detection", exact=True).first.wait_for()
    upload = page.locator(".block").filter(has_text="Upload a photo").locator("input[type=file]").first
    upload.set_input_files(str(sorted(raccoons.glob("*.jpg"))[0]))
    page.get_by_text(re.compile(r"ms for this prediction")).first.wait_for()
    in_table = ("(word) => [...document.querySelectorAll('.block')].filter(b => b.innerText.includes("
                "'Boxes (pixels of the photo)')).some(b => b.innerText.includes(word))")
    page.wait_for_function(in_table, arg="raccoon")
    slider = page.get_by_label("range slider for Score threshold")
    slider.fill("1")  # the boxes are re-filtered from the stored answer: none scores 1
    slider.dispatch_event("input")
    page.wait_for_function(f"() => !({in_table})('raccoon')")
    slider.fill("0.3")
    slider.dispatch_event("input")
    page.wait_for_function(in_table, arg="raccoon")
    page.locator(".block").filter(has_text="Detections").locator("img").first.click()  # the box under the click
    page.get_by_text(re.compile(r"D-RISE.* for box")).first.wait_for()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    page.locator(".block").filter(has_text="Upload a photo").get_by_label("Clear").first.click()  # the old answer goes
    page.wait_for_function(f"() => !({in_table})('raccoon')")
    upload.set_input_files(str(bad))
    no_code_words(error_toast(page, "image|file"))


def test_speech_upload_shows_top3_and_a_bad_file_gets_a_message(browser, app_url, tmp_path):
    import soundfile

    # Its own page: Gradio's waveform preview logs "Waveform load error: MediaError" in the console
    # when the browser cannot play an upload (the bad file below); that is the preview, and the
    # message the user reads is checked instead. Every other console error fails the test.
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = console_errors(page, also_ignore=("Waveform load error",))
    page.goto(app_url)
    open_tab(page, "Speech")
    recording = page.locator("#speech-recording")
    recording.get_by_role("button", name="Upload file").click()
    good = tmp_path / "vowel.wav"
    t = np.arange(4000) / 8000
    soundfile.write(good, 0.5 * np.sin(2 * np.pi * 140 * t) * np.hanning(len(t)), 8000, subtype="PCM_16")
    recording.locator("input[type=file]").set_input_files(str(good))
    page.get_by_text(re.compile(r"ms for this recording")).first.wait_for()
    assert page.locator("#speech-top3 .output-class, #speech-top3 [data-testid=label-output-value]").count() > 0
    # a file named .wav that is not audio: one readable message, and the old answer is gone
    recording.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => !document.body.innerText.match(/ms for this recording/)")
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are my notes, not a recording" * 20)
    recording.get_by_role("button", name="Upload file").click()
    recording.locator("input[type=file]").set_input_files(str(bad))
    text = error_toast(page, "decode|audio|recording")
    no_code_words(text)
    assert "notes.wav" in text and "/tmp" not in text
    context.close()
    assert not errors, f"console errors: {errors}"


BRUSH_CHOSEN = """() => [...document.querySelectorAll('.draw-at-once button[aria-label="Brush"]')]
    .some((b) => b.offsetParent !== null && (b.getAttribute('style') || '').includes('--color-accent'))"""


def test_vision_sketchpad_draws_with_the_brush_at_once(page):
    """The sketchpad opens with its brush selected (nobody presses a tool): a stroke drawn on it is
    classified."""
    choose_digits(page)
    canvas = page.locator(".draw-at-once canvas").first
    canvas.wait_for()
    page.wait_for_function(BRUSH_CHOSEN)  # the page chose it while loading
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2, box["y"] + box["height"] * 0.8
    page.mouse.move(x, top)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x, top + (bottom - top) * i / 20)
    page.mouse.up()
    page.wait_for_timeout(1000)  # a person moves to the button (the editor sends the stroke when it ends)
    page.get_by_role("button", name="Classify", exact=True).first.click()
    page.get_by_text(re.compile(r"ms for this prediction")).first.wait_for()
    # the denoiser's sketchpad (another tab, hidden when the page loaded) has its brush chosen too
    open_tab(page, "Generative")
    open_tab(page, "Denoise")
    page.wait_for_function(BRUSH_CHOSEN)
