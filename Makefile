# Sentinelle — every set-up step a fresh clone needs, in order.
#   make serve   set up everything, then serve on http://localhost:$(PORT)
#   make test    set up everything, then run the whole test suite
#   make bench   benchmarks (full-size scene; minutes)
#   make fuzz    the long schemathesis run (15 min);  make load  the load test (20 and 50 clients)
#   make qgis-plugin  the QGIS plugin zip (build/qgis-plugin/sentinelle_processes.zip)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
SENTINELLE_DATA ?= $(CURDIR)/data
export SENTINELLE_DATA
BENCH_DATA ?= $(CURDIR)/build/fullsize

.PHONY: setup serve test bench bench-jobs bench-wms fuzz load assets data openapi lint clean \
        qgis-plugin

setup: $(BIN)/.installed assets data openapi

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

assets: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

data: $(SENTINELLE_DATA)/catalog/catalog.json
$(SENTINELLE_DATA)/catalog/catalog.json: | $(BIN)/.installed
	$(BIN)/sentinelle sample-data $(SENTINELLE_DATA)

openapi: build/openapi.yml
build/openapi.yml: pygeoapi-config.yml $(BIN)/.installed
	$(BIN)/sentinelle openapi --output $@

serve: setup
	$(BIN)/sentinelle serve --host $${SENTINELLE_HOST:-127.0.0.1} --port $(PORT)

test: setup
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

$(BENCH_DATA)/catalog/catalog.json: | $(BIN)/.installed
	$(BIN)/sentinelle sample-data $(BENCH_DATA) --tile-size 10980

bench: setup $(BENCH_DATA)/catalog/catalog.json
	$(BIN)/python benchmarks/load.py $(BENCH_DATA)
	$(BIN)/python benchmarks/ndvi.py $(BENCH_DATA)
	$(BIN)/python benchmarks/zonal.py $(BENCH_DATA)
	$(BIN)/python benchmarks/change.py $(BENCH_DATA)
	$(BIN)/python benchmarks/hub.py $(BENCH_DATA)

# 20 concurrent async zonal jobs: local Dask cluster 1 vs 2 workers vs pygeoapi's TinyDB manager
bench-jobs: setup
	$(BIN)/python benchmarks/jobs.py $(SENTINELLE_DATA)

# WMS GetMap latency, sequential and 8 clients: Flask, gunicorn, general path, rasterio baseline
bench-wms: setup
	$(BIN)/python benchmarks/wms.py $(SENTINELLE_DATA)

# the long API fuzzing run: every operation of the OpenAPI document, all schemathesis phases
FUZZ_MINUTES ?= 15
fuzz: setup
	$(BIN)/python benchmarks/fuzz.py $(SENTINELLE_DATA) --minutes $(FUZZ_MINUTES)

# the load test on loopback: gunicorn, 20 then 50 clients, latency percentiles, peak memory
LOAD_SECONDS ?= 120
load: setup
	$(BIN)/python benchmarks/loadtest.py $(SENTINELLE_DATA) --duration $(LOAD_SECONDS)

# the QGIS plugin's installable zip (translations compiled with Qt's lrelease)
qgis-plugin:
	$(PYTHON) qgis_plugin/build.py --out build/qgis-plugin

lint: $(BIN)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf build test-artifacts .pytest_cache
