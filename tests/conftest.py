"""Shared fixtures: a throwaway copy of the project (params.yaml and the sample corpus)."""

import os
import shutil
from pathlib import Path

import pytest

from pipelines.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """e2e tests first: each takes a minute or more, and started last they would leave the
    other xdist worker idle while they finish (`make test` runs two workers)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of params.yaml and data/raw + data/hashlists; returns the params.yaml path."""
    return copy_project(tmp_path)


@pytest.fixture
def params(project: Path) -> Params:
    return load_params(project)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / ".dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def ray_engine():
    """engine: ray on a local Ray of 2 CPUs, shut down after the test: later tests in this
    process fork worker pools, and gRPC (Ray's) does not support fork while its threads run."""
    ray = pytest.importorskip("ray")
    from resources.core.engine import EngineConfig, connect

    engine = EngineConfig(kind="ray", num_cpus=2)
    connect(engine)
    yield engine
    ray.shutdown()


def copy_project(dest: Path) -> Path:
    """params.yaml, the sample corpus, and a signing key (as `assay keys init` makes it)."""
    from resources.release.keys import init_key

    shutil.copy(REPO / "params.yaml", dest / "params.yaml")
    for folder in ("raw", "hashlists"):
        shutil.copytree(REPO / "data" / folder, dest / "data" / folder, symlinks=True)
    init_key(dest / ".assay" / "keys" / "release.pem")
    return dest / "params.yaml"


def ingest_all(params: Params, run_id: str = "test-run") -> None:
    """Ingest every source without Dagster, as the ingest asset would."""
    from resources.core.ledger import Ledger
    from resources.core.storage import stage_path
    from resources.ingest.readers import ReadSpec
    from resources.ingest.stage import Screening, ingest_source

    ledger = Ledger(params.ledger_path)
    screening = Screening.from_config(params.screen, params.corpus())
    for source in params.sources:
        spec = ReadSpec(source.text_field, source.id_field, params.ingest.max_record_bytes)
        out = stage_path(params.data_dir, "ingest", source.id)
        root = params.resolve(source.path)
        ingest_source(source, root, params.policy, spec, out, ledger, run_id, screening)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy whose sources are all ingested; returns its params.yaml path."""
    params_path = copy_project(tmp_path_factory.mktemp("ingested"))
    ingest_all(load_params(params_path))
    return params_path


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained project the release gate passes, trained once per session."""
    from tests.resources.release.project import build_trained

    return build_trained(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def release_project(trained_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained project; returns its params.yaml. Its ledger's artifact
    paths still name the template's files, which tests must therefore leave as they are."""
    dest = tmp_path / "project"
    shutil.copytree(trained_template.parent, dest)
    return dest / "params.yaml"


@pytest.fixture(scope="session")
def released_template(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The trained project with a full run's ledger rows, released once per session:
    (params.yaml, `assay release --json` output). Tests must leave it as it is."""
    from tests.resources.evidence.project import build_released

    return build_released(trained_template, tmp_path_factory.mktemp("released") / "project")
