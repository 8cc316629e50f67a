# The README's commands. Each sets itself up: it creates .venv from requirements.txt when missing.
#   make book    build the rendered book, every chapter executed (output: _build/html/index.html)
#   make test    run the test suite (unit tests, chapter smoke runs, zoo re-evaluation)
# Options: SCALE=smoke|book|paper (make book), PYTHON=python3.11 (the interpreter that creates .venv).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SCALE  ?= book
STAMP  := $(VENV)/.installed

.PHONY: book test setup lab lock clean clean-cache

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

book: $(STAMP)
	$(PY) -m rladder_nb build-book --scale $(SCALE)
	@echo "The book is at _build/html/index.html (scale $(SCALE); other scales under _build/<scale>/_build/html)"

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab book/

# Re-pin requirements.txt from the current .venv (after changing pyproject.toml); then update environment.yml.
lock: $(STAMP)
	( echo "# The exact, tested environment for building the book and running the tests (Python 3.11, CPU)."; \
	  echo "# Regenerate after changing pyproject.toml: make lock. environment.yml pins the direct dependencies to the same versions."; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v "^pip==" | sed 's/+cpu$$//' ) > requirements.txt

clean-cache:
	rm -rf _build/.jupyter_cache

clean:
	rm -rf _build
