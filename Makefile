# Two commands do all the set-up: `make demo` (the main job, offline) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The demo has a store of its own: it never touches the project's real review queue.
DEMO_DB := sqlite:///$(CURDIR)/.synthgate/demo.db
SYNTHGATE_DEMO := $(BIN)/synthgate --project $(CURDIR) --db $(DEMO_DB)

.PHONY: demo test snapshots clean

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Generate ~50 candidates offline from recorded sample responses, review them, then show the stats.
demo: $(STAMP)
	$(SYNTHGATE_DEMO) generate --provider replay --replay-file demo/recording.jsonl --count 55 --per-request 5
	$(SYNTHGATE_DEMO) review
	$(SYNTHGATE_DEMO) stats
	@echo
	@echo "Next, export what you accepted (and prove every line's review):"
	@echo "  $(BIN)/synthgate --db $(DEMO_DB) export -o demo-train.jsonl"
	@echo "  $(BIN)/synthgate --db $(DEMO_DB) verify demo-train.jsonl"
	@echo "Start the demo over with: rm .synthgate/demo.db*"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# Regenerate the TUI snapshot images after an intended UI change (review the diff!).
snapshots: $(STAMP)
	$(BIN)/python -m pytest -q tests -k snapshot --snapshot-update

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
