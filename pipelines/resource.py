"""The Dagster resource every asset takes: the params file, and the ledger it names."""

import os

import dagster as dg

from pipelines.params import Params, load_params
from resources.core.ledger import Ledger

CODE_VERSION = "0.1.0"


def default_params_path() -> str:
    return os.environ.get("ASSAY_PARAMS", "params.yaml")


class AssayResource(dg.ConfigurableResource):
    """Where params.yaml is; everything else is read from it."""

    params_path: str = "params.yaml"

    def params(self) -> Params:
        return load_params(self.params_path)

    def ledger(self) -> Ledger:
        return Ledger(self.params().ledger_path)

    def record_run(self, context: dg.AssetExecutionContext) -> str:
        """Append this run to the ledger's runs table (once per run); returns the run id."""
        ledger, params = self.ledger(), self.params()
        seen = ledger.query("SELECT 1 FROM runs WHERE run_id = ?", [context.run_id])
        if seen.is_empty():
            ledger.append(
                "runs",
                [
                    {
                        "run_id": context.run_id,
                        "job": context.job_name,
                        "code_version": CODE_VERSION,
                        "params_digest": params.digest(),
                    }
                ],
            )
        return context.run_id
