"""stage_asset(): how every stage becomes a Dagster asset.

Every stage asset shares the ledger pool, eager automation after its upstream, a code version,
owners, kinds, a group, and the blocking conservation check; an asset module supplies only
the body that calls its stage's ``run`` and turns the outcome into metadata and checks. Every
stage run emits OpenLineage events (assets/lineage.py), and its figures and descriptions are
shaped for the UI once, here (assets/metadata.py).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from assets.checks import conservation
from assets.lineage import emitted
from assets.metadata import escape_md, figures, shown_check, shown_spec
from pipelines.params import Params
from pipelines.resource import AssayResource
from resources.core.ledger import Ledger
from resources.core.lineage import StageJob
from resources.release.keys import key_path, try_signer

LEDGER_POOL = "ledger"
"""DuckDB allows one writer per file: every asset that appends to the ledger shares this pool."""

AFTER_UPSTREAM = dg.AutomationCondition.eager()
"""A stage re-runs when its upstream materialized: a sensor's re-ingest flows to the end."""

CONSERVATION = "conservation"


@dataclass(frozen=True)
class StageRun:
    """What a stage body gets: the Dagster context, params, the ledger and this run's id."""

    context: dg.AssetExecutionContext
    params: Params
    ledger: Ledger
    run_id: str


@dataclass
class StageResult:
    """What a stage body returns; the factory adds conservation and builds the result."""

    metadata: dict
    data_version: str
    row_count: int | None
    counted_sources: list[str] = field(default_factory=list)
    """The sources the conservation check reads back (ignored when it is off)."""
    checks: list[dg.AssetCheckResult] = field(default_factory=list)


Body = Callable[[StageRun], StageResult]


def owners(params: Params) -> list[str]:
    """The sources' owners: who answers for the data every stage carries."""
    return sorted({s.owner for s in params.sources})


def lineage_job(run: StageRun, name: str, doc: str, masked: frozenset[str]) -> StageJob:
    """This stage run as an OpenLineage job, a child of the Dagster run that holds it."""
    return StageJob(
        namespace=run.params.lineage.namespace,
        name=name,
        description=doc.strip().split("\n\n")[0],
        owners=tuple(owners(run.params)),
        dagster_run_id=run.run_id,
        dagster_job=run.context.job_name,
        masked_columns=masked,
    )


def sign_head(run: StageRun, stage: str) -> None:
    """A signed checkpoint of the ledger's head at the end of every stage run, if a key exists."""
    signer = try_signer(key_path(run.params.root, run.params.release.signing_key))
    if signer is None:
        run.context.log.warning("no signing key: the ledger head is not checkpointed")
        return
    run.ledger.checkpoint(signer, f"end of {stage}", run.run_id)


def stage_asset(
    params: Params,
    *,
    name: str,
    upstream: str | None,
    code_version: str,
    checks: Sequence[dg.AssetCheckSpec] = (),
    with_conservation: bool = True,
    kinds: set[str] | None = None,
    group: str = "curation",
    partitions_def: dg.PartitionsDefinition | None = None,
    masked_columns: frozenset[str] = frozenset(),
) -> Callable[[Body], dg.AssetsDefinition]:
    """A decorator turning a stage body into its asset; the body's docstring describes it."""
    specs = [shown_spec(spec) for spec in checks]
    if with_conservation:
        specs.insert(
            0,
            dg.AssetCheckSpec(
                CONSERVATION,
                asset=name,
                blocking=True,
                description="records in = records out + records dropped, each drop with a reason",
            ),
        )

    def decorate(body: Body) -> dg.AssetsDefinition:
        @dg.asset(
            name=name,
            deps=[upstream] if upstream else None,
            description=escape_md(body.__doc__ or ""),
            code_version=code_version,
            pool=LEDGER_POOL,
            automation_condition=AFTER_UPSTREAM if upstream else None,
            check_specs=specs,
            kinds=kinds or {"parquet", "duckdb"},
            group_name=group,
            owners=owners(params),
            partitions_def=partitions_def,
        )
        def stage(context: dg.AssetExecutionContext, assay: AssayResource) -> dg.MaterializeResult:
            run = StageRun(context, assay.params(), assay.ledger(), assay.record_run(context))
            partition = context.partition_key if context.has_partition_key else None
            job = lineage_job(run, name, body.__doc__ or "", masked_columns)
            try:
                with emitted(run.params, run.ledger, job, upstream, partition):
                    result = body(run)
            finally:
                sign_head(run, name)
            results = list(result.checks)
            if with_conservation:
                data_dir = str(run.params.data_dir)
                kept = conservation(run.ledger, name, run.run_id, data_dir, result.counted_sources)
                results.insert(0, kept)
            metadata = figures(result.metadata)
            if result.row_count is not None:
                metadata["dagster/row_count"] = result.row_count
            return dg.MaterializeResult(
                metadata=metadata,
                data_version=dg.DataVersion(result.data_version),
                check_results=[shown_check(r) for r in results],
            )

        return stage

    return decorate
