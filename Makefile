# Every target bootstraps .venv first: on a fresh clone `make run` and `make test` are all it takes.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export PYTHONUNBUFFERED := 1

.PHONY: run test ui bench lint sample clean model

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build on this disk; unpinned it pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The PII NER model (resources/scrub/ner_model.py): built once from generated text (~2 min),
# cached under data/models/ner/<digest of its recipe>/; later runs find it in a second.
model: $(STAMP)
	nice -n 10 $(PY) -m resources.scrub.ner_model

# Ends with a release: the release asset is the last of the graph; the key is made once.
run: $(STAMP) model
	$(VENV)/bin/assay keys init
	$(VENV)/bin/assay run
	$(VENV)/bin/assay verify "$$(ls -d data/release/2* | sort | tail -n 1)"

# Two pytest workers, one per core (tests/conftest.py starts the slow e2e tests first).
TEST_WORKERS ?= 2
test: $(STAMP) model
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --maxschedchunk 2

ui: $(STAMP)
	$(VENV)/bin/assay ui

# Benchmarks, niced, one at a time (`make bench BENCHES=dedup` for one). DataTrove, the dedup
# peer, is installed only here.
BENCHES ?= ingest dedup pii screen train
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	for b in $(BENCHES); do nice -n 10 $(PY) bench/$$b.py || exit 1; done

sample: $(STAMP)
	$(VENV)/bin/assay sample

clean:
	rm -rf data/ingest data/dedup data/scrub data/screen data/train data/release data/lineage \
		data/ledger.duckdb data/ledger.duckdb.lock .dagster_home
