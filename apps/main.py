"""The demo: every task in its own tab. ``make demo`` and ``toolkit serve`` launch it.

Safe defaults: binds to 127.0.0.1, uploads capped at MAX_FILE_SIZE, no extra allowed paths,
and a queue with a concurrency limit so two cores are not swamped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MAX_FILE_SIZE = "10mb"
CONCURRENCY_LIMIT = 2
WARM_UP_DONE = "Every tab's models are loaded"


TABS = ("vision", "detection", "nlp", "speech", "timeseries", "generative", "rl", "make_your_own")  # the tab modules in page order: TITLE, build_demo


def tab_arguments(model_dir=None, sentiment_dirs=None, dates_dir=None, forecaster_dirs=None, anomaly_dir=None,
                  generative_dirs=None, rl_dirs=None) -> dict[str, dict]:
    """Each tab's build_demo (and warm_up) keyword arguments."""
    return {
        "vision": {"model_dir": model_dir},
        "detection": {},  # the shipped raccoon detector
        "nlp": {"sentiment_dirs": sentiment_dirs, "dates_dir": dates_dir},
        "timeseries": {"forecaster_dirs": forecaster_dirs, "anomaly_dir": anomaly_dir},
        "generative": generative_dirs or {},  # vae_dir, gan_dir, denoiser_dir
        "rl": {"agent_dirs": rl_dirs},
        "speech": {},  # the shipped saved_models/audio/spoken_digits
        "make_your_own": {},
    }


def warm_up_in_background(model_dir=None, **tabs) -> threading.Thread:
    """Load every tab's models in a background thread, so the page is up at once and the first
    requests do not pay for loading (a request that comes first loads what it needs itself)."""
    import importlib

    def run():
        start = time.perf_counter()
        for name, kwargs in tab_arguments(model_dir, **tabs).items():
            try:
                importlib.import_module(f"apps.{name}").warm_up(**kwargs)
            except Exception:  # each request reports its own error
                logging.getLogger(__name__).exception("Warming up the %s tab failed", name)
        print(f"{WARM_UP_DONE} ({time.perf_counter() - start:.0f} s).", flush=True)  # benchmarks wait for it

    thread = threading.Thread(target=run, name="warm-up", daemon=True)
    thread.start()
    return thread


class _CachedInspect:
    """``inspect`` for ``gradio.blocks`` with the signature of a class's ``__init__`` and the file
    of a class remembered (they never change while the server runs). Gradio reads both for every
    component each time a new session's copy of the page's config is made (each API call without
    a session, each new page): with every tab's components that was about a quarter of the server's
    Python time under 100 concurrent requests. Everything else is ``inspect`` itself."""

    def __init__(self):
        import functools
        import inspect

        self._inspect = inspect
        self._signature = functools.lru_cache(maxsize=4096)(inspect.signature)
        self._getfile = functools.lru_cache(maxsize=4096)(inspect.getfile)

    def signature(self, obj, *args, **kwargs):
        if not args and not kwargs and getattr(obj, "__name__", None) == "__init__":  # a class's __init__
            return self._signature(obj)
        return self._inspect.signature(obj, *args, **kwargs)

    def getfile(self, obj):
        return self._getfile(obj) if isinstance(obj, type) else self._inspect.getfile(obj)

    def __getattr__(self, name):
        return getattr(self._inspect, name)


def cache_component_signatures() -> None:
    """Make Gradio's per-session page config cheaper (see :class:`_CachedInspect`) and made only
    when a session reads it (:func:`lazy_session_configs`); idempotent."""
    import gradio.blocks

    if not isinstance(gradio.blocks.inspect, _CachedInspect):
        gradio.blocks.inspect = _CachedInspect()
    lazy_session_configs()


def lazy_session_configs() -> None:
    """Gradio makes a new session for every API call without one (each ``/call`` request, each
    batch of a ``batch=True`` event) and copied the config of every component of the page into it
    at once (392 components: 10-20 ms of Python, holding the GIL, per call on two busy cores),
    although a call reads only its inputs' configs; only a deep link reads them all. Here each
    component's copy is made when the session first reads it, from the same blocks; idempotent."""
    import gradio.blocks
    import gradio.route_utils
    import gradio.state_holder

    original = gradio.state_holder.SessionState
    if getattr(original, "lazy_configs", False):
        return

    class _NoBlocks:  # the page's config without its components: Gradio's __init__ copies none
        def __init__(self, blocks):
            self.default_config, self.blocks = blocks.default_config, {}

    class _Configs(dict):
        """The session's copies of the components' configs: each made when first read; all of
        them (what Gradio's ``__init__`` made) before any listing of them."""

        def __init__(self, session, page_blocks: dict):
            super().__init__()
            self._session, self._page_blocks = session, page_blocks

        def _complete(self) -> None:
            config = self._session.blocks_config
            for k, v in config.blocks.items():
                if k in self._page_blocks and not super().__contains__(k):
                    self[k] = config.config_for_block(k, [], v)

        def __missing__(self, key):
            block = self._session.blocks_config.blocks[key]
            value = self[key] = self._session.blocks_config.config_for_block(key, [], block)
            return value

        def __iter__(self):
            self._complete()
            return super().__iter__()

        def __len__(self) -> int:
            self._complete()
            return super().__len__()

        def keys(self):
            self._complete()
            return super().keys()

        def values(self):
            self._complete()
            return super().values()

        def items(self):
            self._complete()
            return super().items()

    class SessionState(original):
        lazy_configs = True

        def __init__(self, blocks):
            super().__init__(_NoBlocks(blocks))
            self.config_values = _Configs(self, blocks.blocks)

    for module in (gradio.state_holder, gradio.route_utils, gradio.blocks):
        if getattr(module, "SessionState", None) is original:
            module.SessionState = SessionState


def build_app(model_dir: str | Path | None = None, sentiment_dirs: dict | None = None,
              dates_dir: str | Path | None = None, forecaster_dirs: dict | None = None,
              anomaly_dir: str | Path | None = None, generative_dirs: dict | None = None,
              rl_dirs: dict | None = None):
    """Every tab; each argument overrides that tab's shipped models (None: the shipped ones)."""
    import importlib

    import gradio as gr

    from apps.common import guard_inputs

    cache_component_signatures()
    arguments = tab_arguments(model_dir, sentiment_dirs, dates_dir, forecaster_dirs, anomaly_dir, generative_dirs,
                              rl_dirs)
    with gr.Blocks(title="Keras app toolkit") as app:
        gr.Markdown("# Keras app toolkit\nTrained models you can try, explain and take to a phone.")
        for name in TABS:
            tab = importlib.import_module(f"apps.{name}")
            with gr.Tab(tab.TITLE):
                tab.build_demo(**arguments[name])  # a Blocks made inside a Tab renders there
    return guard_inputs(app)


def launch(host: str = "127.0.0.1", port: int | None = 7860, model_dir: str | Path | None = None,
           tabs: dict | None = None, warm: bool = True, **kwargs):
    """Build and launch the app (blocking unless ``prevent_thread_lock=True``). ``tabs`` holds
    build_app's keyword arguments; ``warm`` loads the models in the background right away (else
    each loads on first use); ``kwargs`` go to Gradio's launch."""
    import toolkit  # noqa: F401  (Keras backend and log level)

    app = build_app(model_dir, **(tabs or {}))
    if warm:
        warm_up_in_background(model_dir, **(tabs or {}))
    app.queue(default_concurrency_limit=CONCURRENCY_LIMIT)
    kwargs.setdefault("show_error", True)  # every error reaches the page with its message (ours are user words)
    app.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, allowed_paths=[], **kwargs)
    return app


def serve_in_background(model_dir: str | Path | None = None, **tabs):
    """Launch on 127.0.0.1 on a free port without blocking (tests, benchmarks); returns the app,
    whose ``local_url`` is the address and ``close()`` stops it. ``tabs``: build_app's keyword
    arguments (sentiment_dirs=..., rl_dirs=..., ...)."""
    return launch(port=None, model_dir=model_dir, tabs=tabs, warm=False, prevent_thread_lock=True, quiet=True)


if __name__ == "__main__":
    launch()
