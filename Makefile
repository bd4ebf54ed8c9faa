# The two commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
PORT ?= 5000
HTMX := webapp/static/vendor/htmx.min.js

.PHONY: run test install assets lint clean

run: install assets
	$(FLASK) db upgrade
	$(FLASK) demo --url http://127.0.0.1:$(PORT)
	PORT=$(PORT) $(BIN)/python -m webapp.devserver

test: install assets
	$(BIN)/ruff check .
	$(BIN)/pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# htmx comes from the npm registry, pinned with its integrity hash in package-lock.json.
assets: $(HTMX)

node_modules/htmx.org/dist/htmx.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(HTMX): node_modules/htmx.org/dist/htmx.min.js
	mkdir -p $(dir $@)
	cp $< $@

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules webapp/static/vendor
