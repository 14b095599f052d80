"""The base of every params.yaml section (unknown keys are errors, values are frozen), and the
lineage section, kept here so that reading params.yaml does not import OpenLineage (0.4 s
for every CLI call)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineageConfig(Section):
    """params.yaml's ``lineage`` section: where OpenLineage events go, or that none are written
    (resources/core/lineage.py)."""

    enabled: bool = True
    events: str = "data/lineage/events.jsonl"
    namespace: str = "assay"
    """The jobs' namespace: one per deployment of assay."""
