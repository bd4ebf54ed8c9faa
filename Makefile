# The two commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
PORT ?= 5000
# `make run`'s example portal: another host name, so its iframe is cross-site.
PORTAL_PORT ?= 5001
FRAME_ANCESTORS ?= 'self' http://localhost:$(PORTAL_PORT)
HTMX := webapp/static/vendor/htmx.min.js
IDIOMORPH := webapp/static/vendor/idiomorph-ext.min.js

.PHONY: run test unit soak screenshots install assets browser bench-tools lint clean

run: install assets
	$(FLASK) db upgrade
	$(FLASK) demo --url http://127.0.0.1:$(PORT)
	PORT=$(PORT) PORTAL_PORT=$(PORTAL_PORT) FRAME_ANCESTORS="$(FRAME_ANCESTORS)" \
		$(BIN)/python -m webapp.dev.devserver

# The whole suite twice: on the embedded default (SQLite + SqliteHuey), then on PostgreSQL +
# Redis with a fresh database and Huey name (TEST_POSTGRES_URL, TEST_REDIS_URL). Where those
# servers cannot be reached the second run skips, saying why; under CI=true it fails instead.
test: install assets browser
	$(BIN)/ruff check .
	$(BIN)/pytest
	$(BIN)/pytest --scale-out

# The fast unit layer alone: the operations called in memory (tests/unit), no servers.
unit: install
	$(BIN)/pytest tests/unit

# The whole suite ten times in a row on both configurations; stops at the first failure.
soak: install assets browser
	for run in 1 2 3 4 5 6 7 8 9 10; do \
		echo "== soak run $$run of 10"; \
		$(BIN)/pytest -x -q && $(BIN)/pytest --scale-out -x -q || exit 1; \
	done

# The README's screenshots (docs/screenshots/), taken by the browser tests; `make test`
# writes its own to build/screenshots/ and leaves the tracked ones alone.
screenshots: install assets browser
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/browser -q

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# htmx and idiomorph (its morphing swap) come from the npm registry, pinned with their
# integrity hashes in package-lock.json.
assets: $(HTMX) $(IDIOMORPH)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(HTMX): node_modules/.installed
	mkdir -p $(dir $@)
	cp node_modules/htmx.org/dist/htmx.min.js $@

$(IDIOMORPH): node_modules/.installed
	mkdir -p $(dir $@)
	cp node_modules/idiomorph/dist/idiomorph-ext.min.js $@

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here); the
# archive corpus (tests/unit/test_archives.py) makes and checks zips with Info-ZIP's zip and unzip.
browser:
	test -x /usr/bin/chromium -a -x /usr/bin/zip -a -x /usr/bin/unzip || (apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium zip unzip)

# The benchmarks load the servers with wrk (Debian's package) and drive Chromium.
bench-tools: install assets browser
	test -x /usr/bin/wrk || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules webapp/static/vendor build
