"""OpenLineage events for every stage run: START, COMPLETE or FAIL, with inputs and outputs.

Events go through openlineage-python's file transport, one JSON document a line, appended to
``lineage.events`` (data/lineage/events.jsonl): a lineage backend (Marquez, DataHub, ...) can
ingest the file as it is. Nothing is sent over a network.

Datasets are files: namespace ``file``, name the absolute path (the OpenLineage naming spec
for a local file system). A stage's outputs are the artifacts it recorded in the ledger in this
run (and, for release, the release folder); its inputs are the files its upstream stage wrote
last (or, for ingest, the source's own files). Each dataset carries its schema (Parquet files),
its size (rows and bytes) and its owners (the sources' owners). A Parquet output made from a
Parquet input of the same source carries column lineage: every column is DIRECT/IDENTITY from
the same column, except the stage's masked columns (scrub's text), which are
DIRECT/TRANSFORMATION with masking set; rows dropped on the way are an INDIRECT/FILTER
dependency of the whole dataset.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as data_quality_metrics
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.uuid import generate_new_uuid

from resources.core.ledger import Ledger

FILE_NAMESPACE = "file"
PRODUCER = "urn:assay:lineage"
"""Who produced the events (a URI, as the spec asks): assay's emitter, whatever its host."""

OWNER_TYPE = "MAINTAINER"


@dataclass(frozen=True)
class FileDataset:
    """A file a stage read or wrote, with what the events say about it."""

    path: Path
    source_id: str | None
    rows: int | None
    size_bytes: int | None
    owners: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class StageJob:
    """One stage run as OpenLineage sees it: a job in a namespace, run inside a Dagster run."""

    namespace: str
    name: str
    description: str
    owners: tuple[str, ...]
    dagster_run_id: str
    dagster_job: str
    masked_columns: frozenset[str] = field(default_factory=frozenset)
    run_id: str = field(default_factory=lambda: str(generate_new_uuid()))


def artifact_datasets(
    ledger: Ledger, stage: str, owners: dict[str, str], run_id: str | None = None
) -> list[FileDataset]:
    """The files a stage recorded: in one run, or (run_id None) the last version of each path."""
    where, args = ("stage = ?", [stage])
    if run_id is not None:
        where, args = "stage = ? AND run_id = ?", [stage, run_id]
    rows = ledger.query(
        "SELECT path, source_id, records, size_bytes FROM artifacts"
        f" WHERE {where} QUALIFY row_number() OVER"
        " (PARTITION BY path ORDER BY entry_seq DESC, row_no DESC) = 1 ORDER BY path",
        args,
    ).to_dicts()
    return [
        FileDataset(
            Path(r["path"]),
            r["source_id"],
            r["records"],
            r["size_bytes"],
            _owners_of(r["source_id"], owners),
        )
        for r in rows
        if Path(r["path"]).exists()
    ]


def path_dataset(
    path: Path, source_id: str | None, owners: dict[str, str], rows: int | None = None
) -> FileDataset:
    """A file or a folder (a source's own, a release's) with the bytes of all its files."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) if path.exists() else None
    return FileDataset(path, source_id, rows, size, _owners_of(source_id, owners))


def _owners_of(source_id: str | None, owners: dict[str, str]) -> tuple[str, ...]:
    """A source's file belongs to its owner; a file made of every source, to all of them."""
    if source_id in owners:
        return (owners[source_id],)
    return tuple(sorted(set(owners.values())))


class LineageEmitter:
    """Writes one stage run's events through the OpenLineage client's file transport."""

    def __init__(self, events_path: Path) -> None:
        events_path.parent.mkdir(parents=True, exist_ok=True)
        # append: one JSON document a line in one file, as a backend's file reader expects.
        config = FileConfig(log_file_path=str(events_path), append=True)
        self.client = OpenLineageClient(transport=FileTransport(config))

    def start(self, job: StageJob, inputs: Sequence[FileDataset]) -> RunEvent:
        return self._emit(RunState.START, job, _inputs(inputs), [])

    def complete(
        self, job: StageJob, inputs: Sequence[FileDataset], outputs: Sequence[FileDataset]
    ) -> RunEvent:
        return self._emit(RunState.COMPLETE, job, _inputs(inputs), _outputs(job, inputs, outputs))

    def fail(self, job: StageJob, inputs: Sequence[FileDataset], error: BaseException) -> RunEvent:
        message = error_message_run.ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}", programmingLanguage="python"
        )
        return self._emit(RunState.FAIL, job, _inputs(inputs), [], {"errorMessage": message})

    def _emit(
        self,
        state: RunState,
        job: StageJob,
        inputs: list[InputDataset],
        outputs: list[OutputDataset],
        run_facets: dict | None = None,
    ) -> RunEvent:
        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=job.run_id, facets=_run_facets(job) | (run_facets or {})),
            job=Job(namespace=job.namespace, name=job.name, facets=_job_facets(job)),
            producer=PRODUCER,
            inputs=inputs,
            outputs=outputs,
        )
        self.client.emit(event)
        return event


def _run_facets(job: StageJob) -> dict:
    return {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=job.dagster_run_id),
            job=parent_run.Job(namespace=job.namespace, name=job.dagster_job),
        ),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=importlib.metadata.version("dagster"),
            name="dagster",
            openlineageAdapterVersion=importlib.metadata.version("openlineage-python"),
        ),
    }


def _job_facets(job: StageJob) -> dict:
    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="DAGSTER", jobType="ASSET"
        ),
        "documentation": documentation_job.DocumentationJobFacet(description=job.description),
        "ownership": ownership_job.OwnershipJobFacet(
            owners=[ownership_job.Owner(name=o, type=OWNER_TYPE) for o in job.owners]
        ),
    }


def _dataset_facets(dataset: FileDataset) -> dict:
    facets: dict = {
        "ownership": ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=o, type=OWNER_TYPE) for o in dataset.owners]
        )
    }
    columns = parquet_columns(dataset.path)
    if columns:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=name, type=dtype)
                for name, dtype in columns.items()
            ]
        )
    return facets


def parquet_columns(path: Path) -> dict[str, str]:
    """A Parquet file's column names and types; empty for any other file."""
    if path.suffix != ".parquet" or not path.is_file():
        return {}
    return {name: str(dtype) for name, dtype in pl.read_parquet_schema(path).items()}


def _inputs(datasets: Iterable[FileDataset]) -> list[InputDataset]:
    return [
        InputDataset(
            namespace=FILE_NAMESPACE,
            name=d.name,
            facets=_dataset_facets(d),
            inputFacets={"dataQualityMetrics": _size(d)},
        )
        for d in datasets
    ]


def _size(dataset: FileDataset) -> data_quality_metrics.DataQualityMetricsInputDatasetFacet:
    return data_quality_metrics.DataQualityMetricsInputDatasetFacet(
        columnMetrics={}, rowCount=dataset.rows, bytes=dataset.size_bytes
    )


def _outputs(
    job: StageJob, inputs: Sequence[FileDataset], outputs: Iterable[FileDataset]
) -> list[OutputDataset]:
    by_source = {d.source_id: d for d in inputs if d.source_id and parquet_columns(d.path)}
    result = []
    for d in outputs:
        facets = _dataset_facets(d)
        upstream = by_source.get(d.source_id)
        if upstream is not None and parquet_columns(d.path):
            facets["columnLineage"] = column_lineage(upstream, d, job.masked_columns)
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=d.rows, size=d.size_bytes
        )
        result.append(
            OutputDataset(
                namespace=FILE_NAMESPACE,
                name=d.name,
                facets=facets,
                outputFacets={"outputStatistics": stats},
            )
        )
    return result


def column_lineage(
    upstream: FileDataset, output: FileDataset, masked: frozenset[str]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """Each output column from the same input column; masked ones rewritten with masking."""
    in_columns = parquet_columns(upstream.path)
    fields = {}
    for name in parquet_columns(output.path):
        if name not in in_columns:
            continue
        if name in masked:
            how = column_lineage_dataset.Transformation(
                type="DIRECT",
                subtype="TRANSFORMATION",
                description="PII replaced by the configured operators",
                masking=True,
            )
        else:
            how = column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")
        fields[name] = column_lineage_dataset.Fields(inputFields=[_field(upstream, name, how)])
    # Which rows survive depends on the records themselves (duplicates, PII over the limit).
    row_filter = column_lineage_dataset.Transformation(type="INDIRECT", subtype="FILTER")
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields=fields,
        dataset=[_field(upstream, name, row_filter) for name in sorted(in_columns)],
    )


def _field(
    dataset: FileDataset, name: str, how: column_lineage_dataset.Transformation
) -> column_lineage_dataset.InputField:
    return column_lineage_dataset.InputField(
        namespace=FILE_NAMESPACE, name=dataset.name, field=name, transformations=[how]
    )
