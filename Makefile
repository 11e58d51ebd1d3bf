# Two commands do all the set-up: `make demo` (the main job, offline) and `make test` (lint, types and the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The demo has a store of its own: it never touches the project's real review queue.
DEMO_DB := sqlite:///$(CURDIR)/.synthgate/demo.db
SYNTHGATE_DEMO := $(BIN)/synthgate --project $(CURDIR) --db $(DEMO_DB)

.PHONY: demo test lint snapshots clean

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The browser tests drive Debian's Chromium (Playwright's own browser downloads are unreachable).
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } || echo "note: the browser tests need /usr/bin/chromium: sudo apt-get install chromium (they are skipped without it)"
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

# The suite runs even when lint fails, so one run reports both; either failing fails the target.
# The suite's summary stays the last thing printed when lint passes.
test: $(STAMP)
	@status=0; $(MAKE) --no-print-directory lint || status=$$?; \
	$(BIN)/python -m pytest -n 2 -q || exit $$?; \
	if [ $$status -ne 0 ]; then echo "make test: the suite passed, lint or types did not (see above; run make lint)"; fi; \
	exit $$status

# Formatting, lint and types, configured in pyproject.toml; all three report before the target fails.
# `ruff format PATH` and `ruff check --fix PATH` fix most findings.
lint: $(STAMP)
	@status=0; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "mypy"; $(BIN)/mypy || status=1; \
	exit $$status

# Regenerate the TUI snapshot images after an intended UI change (review the diff!).
snapshots: $(STAMP)
	$(BIN)/python -m pytest -q tests -k snapshot --snapshot-update

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
