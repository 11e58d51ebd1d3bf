# Two commands do all the set-up: `make test` (the suite) and, later, `make demo` (the main job).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test snapshots clean

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# Regenerate the TUI snapshot images after an intended UI change (review the diff!).
snapshots: $(STAMP)
	$(BIN)/python -m pytest -q tests -k snapshot --snapshot-update

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
