.PHONY: help install test lint check demo bench stubs tables

help:           ## list targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

install:        ## install the package with test tools into the active environment
	pip install -e '.[test]'

test:           ## run the test suite (real etcd and PostgreSQL servers)
	pytest

lint:           ## ruff, mypy (strict), import-linter
	ruff check . && ruff format --check . && mypy && lint-imports

check: lint test ## everything CI runs

demo:           ## run the demo on two local etcd servers
	replicator demo

bench:          ## benchmark at 100k keys against make-mirror and a plain batched writer
	python scripts/bench.py --keys 100000

stubs:          ## regenerate the etcd gRPC stubs (needs Go)
	python scripts/gen_etcd_stubs.py

tables:         ## regenerate the built-in resource table (needs Go)
	python scripts/gen_k8s_resources.py
