# Two commands: `make test` and `make book` (PROFILE=quick|full). Each creates .venv when missing,
# installs the project with pinned dependencies, registers the Jupyter kernel, then does its job.
PROFILE ?= quick
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.audioxai-installed

.PHONY: test book run build venv clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e '.[dev]' -c constraints.txt
	$(PY) -m ipykernel install --sys-prefix --name audioxai --display-name "Python 3 (audioxai)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

book: $(STAMP)
	$(PY) -m audioxai.book run --profile $(PROFILE)
	$(PY) -m audioxai.book build

run: $(STAMP)
	$(PY) -m audioxai.book run --profile $(PROFILE)

build: $(STAMP)
	$(PY) -m audioxai.book build

clean:
	rm -rf _build book/_executed results/quick
