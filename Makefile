# agriseg developer commands. `make test` and `make demo` bootstrap .venv on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make test-min`: the suite against the lowest version of every dependency pyproject.toml allows
VENV_MIN ?= .venv-min
MIN_STAMP := $(VENV_MIN)/.installed
MIN_CONSTRAINTS := $(VENV_MIN)/constraints-min.txt
# `make bench-peers`: GeoDeep and geoai live in their own venv, never in agriseg's dependencies
PEERS_VENV ?= bench/.venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

.PHONY: install test test-min lint demo bench bench-models bench-accuracy bench-peers samples weights clean clean-min clean-peers

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,dask,onnx,isoxml]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check agriseg tests bench tools
	$(BIN)/python -m pytest -q

# Manual (CI runs `make test`): pins each direct dependency (dev, dask and onnx extras
# included) to its floor with tools/min_constraints.py (needs Python >= 3.11 for tomllib) and runs pytest in $(VENV_MIN).
test-min: $(MIN_STAMP)
	$(VENV_MIN)/bin/python tools/min_constraints.py --report
	$(VENV_MIN)/bin/python -m pytest -q

$(MIN_STAMP): pyproject.toml tools/min_constraints.py
	test -x $(VENV_MIN)/bin/python || $(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python tools/min_constraints.py -o $(MIN_CONSTRAINTS)
	$(VENV_MIN)/bin/python -m pip install --quiet -c $(MIN_CONSTRAINTS) -e ".[dev,dask,onnx]"
	touch $(MIN_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check agriseg tests bench tools

demo: $(STAMP)
	$(BIN)/agriseg map sample_tiles/field_small.tif -o demo-output --overwrite \
		--min-area 0.0005 --fill-holes 0.0005
	@echo "Outputs in demo-output/: mask.tif, confidence.tif (COGs), fields.gpkg, summary.json,"
	@echo "preview.png (class map over the image), README.txt. Model: the default one shipped"
	@echo "in agriseg/models/default (pass --model CKPT for your own)."

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# every registered architecture: parameters, GFLOPs, CPU latency and Carrot-Weed validation mIoU
# after the same short training; writes docs/models.md (hours on 2 CPU cores; --no-train: minutes)
bench-models: $(STAMP)
	$(BIN)/python -m bench.bench_models $(BENCH_MODELS_ARGS)

# The recipe study (bench/bench_accuracy.py): each variant of configs/train/carrot-weed.yaml
# cross-validated on ../shared/data/carrot-weed at BUDGET minutes per fold; resumable. Hours of
# CPU at the default 45 min per fold; results in bench/out/accuracy/<budget>min/
BUDGET ?= 45
ACCURACY_ARGS ?=
bench-accuracy: $(STAMP)
	$(BIN)/python -m bench.bench_accuracy --budget $(BUDGET) $(ACCURACY_ARGS)

# agriseg (onnx and torch backends) vs GeoDeep and geoai: same weights, same 4096^2 raster, whole
# processes, best of 3 rounds; results in bench/out/peers.json. Manual, ~10 min on 2 CPU cores.
bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -m bench.bench_peers --peers-python $(PEERS_VENV)/bin/python

# geoai-py is installed in a second step: if it fails, GeoDeep is still benchmarked and
# bench_peers.py says why geoai was skipped
$(PEERS_STAMP): bench/peers/requirements.txt bench/peers/requirements-geoai.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/peers/requirements.txt
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/peers/requirements-geoai.txt \
		|| echo "bench-peers: geoai-py did not install (pip's error above); geoai will be skipped"
	touch $(PEERS_STAMP)

weights: $(STAMP)
	$(BIN)/agriseg train --config configs/train/default.yaml
	cp runs/default/best.safetensors agriseg/models/default/agriseg-default.safetensors

samples: $(STAMP)
	$(BIN)/python -m agriseg.sampledata sample_tiles

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/out

clean-min:
	rm -rf $(VENV_MIN)

clean-peers:
	rm -rf $(PEERS_VENV)
