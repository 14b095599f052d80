"""The Dagster UI end to end: start dagster-webserver on a copy of the project, check through
GraphQL that the code location loads with the asset, its check, the sensor and the schedule, then
launch a materialization of one ingest partition and watch it succeed and reach the ledger.

It also reads what a user sees: every asset's owners and description, a description on every
check, the automation sensor running, and the partition's row count, owner and tables; and the
OpenLineage events the run wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines.params import load_params
from pipelines.runner import DAGSTER_YAML
from resources.core.ledger import Ledger
from tests.resources.core.lineage_schema import validate_event

REPO = Path(__file__).resolve().parents[2]
WEBSERVER = Path(sys.executable).with_name("dagster-webserver")
SOURCE = "forum"
START_TIMEOUT = 120
RUN_TIMEOUT = 180

# Runs are launched by the default run launcher (a subprocess per run). The instance's default
# run coordinator queues runs for the daemon, which this test does not start (`assay ui` runs
# `dagster dev`, which does), so runs here go straight to the launcher.
RUN_COORDINATOR = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name }
              sensors { name sensorState { status } }
              assetNodes {
                assetKey { path }
                description
                owners {
                  __typename
                  ... on UserAssetOwner { email }
                  ... on TeamAssetOwner { team }
                }
                partitionKeys
                assetChecksOrError {
                  __typename
                  ... on AssetChecks { checks { name blocking description } }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      tags { key value }
      eventConnection { events { __typename ... on MessageEvent { message } } }
    }
  }
}
"""

MATERIALIZATION_QUERY = """
query Latest($assetKey: AssetKeyInput!, $partition: String!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      assetMaterializations(partitions: [$partition], limit: 1) {
        runId
        metadataEntries {
          __typename
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on MarkdownMetadataEntry { mdStr }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}
"""

CHECK_QUERY = """
query Check($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      assetCheckOrError(checkName: "conservation") {
        __typename
        ... on AssetCheck { executionForLatestMaterialization { runId status } }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ui_project(tmp_path: Path) -> Path:
    """A copy of the project's configuration and sample corpus, and a fresh instance."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, root / name)
    for folder in ("raw", "hashlists"):
        shutil.copytree(REPO / "data" / folder, root / "data" / folder, symlinks=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML + RUN_COORDINATOR)
    return root


class Webserver:
    """A dagster-webserver subprocess and a small GraphQL client for it."""

    def __init__(self, project: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log
        env = {
            **os.environ,
            "DAGSTER_HOME": str(project.parent / "dagster_home"),
            "ASSAY_PARAMS": str(project / "params.yaml"),
            # The code server and each run's subprocess import this checkout's packages.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        }
        port = self.url.rsplit(":", 1)[1]
        args = [str(WEBSERVER), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", port]
        with log.open("wb") as out:
            # Its own process group, so the code server and run processes it spawns go with it.
            self.proc = subprocess.Popen(
                args, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Anything left in the group (a run subprocess) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_until_up(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"webserver exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                    return json.load(response)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        pytest.fail(f"webserver not up after {timeout}s:\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.load(response)
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]


def loaded_location(server: Webserver, timeout: float) -> dict:
    """The one code location, once it finished loading."""
    deadline = time.monotonic() + timeout
    while True:
        workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        entries = workspace["locationEntries"]
        assert len(entries) == 1, entries
        if entries[0]["loadStatus"] == "LOADED":
            return entries[0]
        assert time.monotonic() < deadline, f"code location still loading:\n{server.log_tail()}"
        time.sleep(1)


def wait_for_run(server: Webserver, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['status']} after {timeout}s")
        time.sleep(2)


@pytest.mark.e2e
@pytest.mark.enable_socket
def test_webserver_loads_and_materializes_a_partition(ui_project: Path, tmp_path: Path) -> None:
    project = ui_project
    server = Webserver(project, tmp_path / "webserver.log")
    try:
        info = server.wait_until_up(START_TIMEOUT)
        assert info["dagster_webserver_version"]

        entry = loaded_location(server, START_TIMEOUT)
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        (repo,) = location["repositories"]
        assert "ingest_job" in {j["name"] for j in repo["jobs"]}
        assert "source_change_sensor" in {s["name"] for s in repo["sensors"]}
        assert "nightly_full_run" in {s["name"] for s in repo["schedules"]}
        nodes = {"/".join(n["assetKey"]["path"]): n for n in repo["assetNodes"]}
        ingest = nodes["ingest"]
        assert SOURCE in ingest["partitionKeys"]
        checks = ingest["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        conservation = [c for c in checks["checks"] if c["name"] == "conservation"]
        assert [c["blocking"] for c in conservation] == [True]
        shows_what_a_user_needs(repo, project)

        launched = server.graphql(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": entry["name"],
                        "repositoryName": repo["name"],
                        "jobName": "ingest_job",
                    },
                    "runConfigData": {},
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SOURCE}]},
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        run = wait_for_run(server, run_id, RUN_TIMEOUT)
        messages = [e.get("message") for e in run["eventConnection"]["events"]]
        assert run["status"] == "SUCCESS", "\n".join(filter(None, messages))
        assert {"key": "dagster/partition", "value": SOURCE} in run["tags"]

        latest_partition_shows_its_figures(server, run_id, project)

        check = server.graphql(CHECK_QUERY, {"assetKey": {"path": ["ingest"]}})
        execution = check["assetNodeOrError"]["assetCheckOrError"]
        execution = execution["executionForLatestMaterialization"]
        assert (execution["runId"], execution["status"]) == (run_id, "SUCCEEDED")
    finally:
        server.stop()

    ledger = Ledger(project / "data" / "ledger.duckdb")
    assert ledger.verify().ok
    assert ledger.query("SELECT run_id FROM runs")["run_id"].to_list() == [run_id]
    counts = ledger.query(
        "SELECT source_id, records_in, records_out, dropped FROM stage_counts WHERE run_id = ?",
        [run_id],
    ).to_dicts()
    raw = (project / "data" / "raw" / "forum.jsonl").read_bytes()
    lines = [line for line in raw.splitlines() if line.strip()]
    assert len(counts) == 1 and counts[0]["source_id"] == SOURCE
    assert counts[0]["records_in"] == len(lines)
    records = ledger.query(
        "SELECT source_id, count(*) AS n FROM records WHERE run_id = ? GROUP BY source_id",
        [run_id],
    ).to_dicts()
    drops = ledger.query("SELECT count(*) AS n FROM drops WHERE run_id = ?", [run_id]).item()
    assert records == [{"source_id": SOURCE, "n": counts[0]["records_out"]}]
    assert counts[0]["records_out"] > 0
    assert counts[0]["records_out"] + drops == len(lines)
    parquet = project / "data" / "ingest" / f"{SOURCE}.parquet"
    assert parquet.exists()

    events = [json.loads(line) for line in (project / "data" / "lineage" / "events.jsonl").open()]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("ingest", "START"),
        ("ingest", "COMPLETE"),
    ]
    for event in events:
        validate_event(event)
        assert event["run"]["facets"]["parent"]["run"]["runId"] == run_id
    (source,) = events[1]["inputs"]
    assert source["name"] == str((project / "data" / "raw" / "forum.jsonl").resolve())
    assert source["inputFacets"]["dataQualityMetrics"]["rowCount"] == len(lines)
    (output,) = events[1]["outputs"]
    assert output["name"] == str(parquet.resolve())
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == counts[0]["records_out"]


def shows_what_a_user_needs(repo: dict, project: Path) -> None:
    """Owners and a description on every asset, a description on every check, automation on."""
    params = load_params(project / "params.yaml")
    owners = {s.owner for s in params.sources}
    for node in repo["assetNodes"]:
        key = "/".join(node["assetKey"]["path"])
        assert {o["email"] for o in node["owners"]} == owners, key
        assert node["description"] and "<source>" not in node["description"], key
        for check in node["assetChecksOrError"]["checks"]:
            assert check["description"], (key, check["name"])
    ingest = next(n for n in repo["assetNodes"] if n["assetKey"]["path"] == ["ingest"])
    assert "data/ingest/\\<source\\>.parquet" in ingest["description"]  # shown as written
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["assay_automation"] == "RUNNING", sensors


def latest_partition_shows_its_figures(server: Webserver, run_id: str, project: Path) -> None:
    """The partition's row count, its source's owner, and its drops as a table, not JSON."""
    latest = server.graphql(
        MATERIALIZATION_QUERY, {"assetKey": {"path": ["ingest"]}, "partition": SOURCE}
    )["assetNodeOrError"]["assetMaterializations"]
    (materialization,) = latest
    assert materialization["runId"] == run_id
    entries = {e["label"]: e for e in materialization["metadataEntries"]}
    assert not [label for label, e in entries.items() if e["__typename"] == "JsonMetadataEntry"]
    owner = load_params(project / "params.yaml").source(SOURCE).owner
    assert entries["owner"]["text"] == owner
    assert entries["dagster/row_count"]["intValue"] == entries["records_out"]["intValue"] > 0
    table = entries["dropped_by_reason"]["mdStr"].splitlines()
    assert table[0] == "| reason | records |" and table[1] == "|---|---:|"
