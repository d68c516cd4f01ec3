# The tutorial's commands. `make demo` and `make test` are all a new reader needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UI_PORT ?= 5000
SERVE_PORT ?= 5001
# Keep MLflow's anonymous usage telemetry off in everything make starts.
export MLFLOW_DISABLE_TELEMETRY := true
# `mlflow ui` would also start background job workers for GenAI features this tutorial never uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: demo train serve-once serve test lint ui clean

# The virtual environment, rebuilt whenever a requirements file changes.
$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt requirements-team.txt \
		requirements-spark.txt requirements-browser.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

## demo: install, train, promote the best run, serve it for one request, then say what to open
demo: train
	$(BIN)/python register_model.py
	@$(MAKE) --no-print-directory serve-once
	@echo
	@echo "Done. Browse the runs and the registered model with:  make ui"
	@echo "then open http://127.0.0.1:$(UI_PORT)"

## serve-once: start serve_model.sh, send the sample rows with predict.py --url, stop the server
serve-once: $(BIN)/.installed
	@echo "Starting ./serve_model.sh on port $(SERVE_PORT) for one request (log: .serve-once.log)"
	@setsid env PORT=$(SERVE_PORT) PATH="$(CURDIR)/$(BIN):$$PATH" ./serve_model.sh > .serve-once.log 2>&1 & \
	server=$$!; trap 'kill -- -$$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	for second in $$(seq 120); do \
		kill -0 $$server 2>/dev/null || { cat .serve-once.log; exit 1; }; \
		grep -q "^Serving" .serve-once.log && $(BIN)/python predict.py \
			--url http://127.0.0.1:$(SERVE_PORT) > .serve-once.out 2>/dev/null && break; \
		sleep 1; \
	done; \
	echo "$(BIN)/python predict.py --url http://127.0.0.1:$(SERVE_PORT)"; cat .serve-once.out; \
	echo "Server stopped."

## train: three hyperparameter settings per model family, so the UI has runs to compare
train: $(BIN)/.installed
	$(BIN)/python train_rfc.py --n-estimators 50 --max-depth 3 --run-name rf-shallow
	$(BIN)/python train_rfc.py --n-estimators 100 --run-name rf-default
	$(BIN)/python train_rfc.py --n-estimators 300 --min-samples-leaf 5 --max-features 0.5 --run-name rf-smooth
	$(BIN)/python train_ann.py --hidden-layers 16 --run-name mlp-small
	$(BIN)/python train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name mlp-two-layers
	$(BIN)/python train_ann.py --hidden-layers 8 --alpha 1.0 --learning-rate 0.01 --run-name mlp-strong-penalty

## test: the same set-up plus the test tools, then every test
test: $(BIN)/.installed-test
	$(BIN)/python -m pytest -n 2

## lint: ruff, the pinned version (installed on its own: lint needs none of the test extras)
lint: $(BIN)/.installed requirements-lint.txt
	$(BIN)/python -m pip install --quiet -r requirements-lint.txt
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## ui: MLflow's UI on this machine only (127.0.0.1), reading the tutorial's store
ui: $(BIN)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT) --workers 1

## serve: serve the champion on http://127.0.0.1:$(SERVE_PORT) until Ctrl-C
serve: $(BIN)/.installed
	PORT=$(SERVE_PORT) PATH="$(CURDIR)/$(BIN):$$PATH" ./serve_model.sh

## clean: forget every run (the store, and the team server's in server/) but keep .venv
clean:
	rm -rf mlflow.db mlruns server .serve-once.log .serve-once.out

## bench: what tracking costs, how promotion and serving scale; writes docs/benchmarks.md (apt: hyperfine wrk)
.PHONY: bench
bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python benchmarks/run.py

## screenshots: retake docs/images/ui-*.png from a fresh demo in a temporary store (apt: chromium)
.PHONY: screenshots
screenshots: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-browser.txt
	$(BIN)/python docs/capture_screenshots.py

## server: a tracking server for a team on http://127.0.0.1:5050 (SQLite and artifacts in server/)
## install-team / install-spark: the PostgreSQL driver and boto3 / PySpark, for the optional chapters
.PHONY: server install-team install-spark
server: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" ./tracking_server.sh
install-team: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-team.txt
install-spark: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-spark.txt
