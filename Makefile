PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench lint proto soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/pytest

demo: install
	$(BIN)/python -m node.demo

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check node connector policies tests bench
	$(BIN)/mypy

soak: install
	$(BIN)/python -m bench.soak

proto: install
	$(BIN)/python -m grpc_tools.protoc -Iconnector/pb=proto --python_out=. --grpc_python_out=. --pyi_out=. proto/trustspace.proto

clean:
	rm -rf $(VENV) build *.egg-info
