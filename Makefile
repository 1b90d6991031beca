# agriseg developer commands. `make test` and `make demo` bootstrap .venv on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench samples weights clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check agriseg tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check agriseg tests bench

demo: $(STAMP)
	$(BIN)/agriseg map sample_tiles/field_small.tif -o demo-output --overwrite \
		--min-area 0.0005 --fill-holes 0.0005
	@echo "Outputs in demo-output/: mask.tif, confidence.tif (COGs), fields.gpkg, summary.json,"
	@echo "preview.png (class map over the image), README.txt. Model: the default one shipped"
	@echo "in agriseg/models/default (pass --model CKPT for your own)."

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

weights: $(STAMP)
	$(BIN)/agriseg train --config configs/train/default.yaml
	cp runs/default/best.safetensors agriseg/models/default/agriseg-default.safetensors

samples: $(STAMP)
	$(BIN)/python -m agriseg.sampledata sample_tiles

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/out
