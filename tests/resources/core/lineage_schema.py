"""Validates OpenLineage events against the spec's JSON schemas, vendored in openlineage_spec/.

The event is checked against the RunEvent definition, and every facet against the schema its
``_schemaURL`` names; a facet whose schema is not vendored is an error, not a pass.
"""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = Path(__file__).with_name("openlineage_spec")
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _registry() -> Registry:
    resources = []
    for path in sorted(SPEC.rglob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validate(schema_url: str, value: dict) -> None:
    base = schema_url.split("#", 1)[0]
    assert base in REGISTRY, f"no vendored schema for {schema_url}"
    Draft202012Validator({"$ref": schema_url}, registry=REGISTRY).validate(value)


def facets_of(event: dict) -> list[dict]:
    """Every facet in an event: the run's, the job's, and each dataset's."""
    found = list(event["run"].get("facets", {}).values())
    found += event["job"].get("facets", {}).values()
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            found += dataset.get(key, {}).values()
    return found


def validate_event(event: dict) -> None:
    """Raises if the event or any of its facets breaks the OpenLineage schema."""
    validate(RUN_EVENT, event)
    for facet in facets_of(event):
        validate(facet["_schemaURL"], facet)
