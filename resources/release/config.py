"""The release section of params.yaml: where the key is, and the gate's thresholds."""

from pathlib import Path

from pydantic import Field

from resources.core.config import Section

DEFAULT_POLICY = Path(__file__).parent / "policy" / "release.rego"


class ReleaseConfig(Section):
    """What the release gate allows. Licenses and consent come from params.yaml's policy."""

    signing_key: str = ".assay/keys/release.pem"
    """ECDSA P-256 private key (PEM); $ASSAY_SIGNING_KEY overrides it. `assay keys init`."""
    policy: str | None = None
    """A Rego v1 policy (package assay.release, rule deny), relative to the project root;
    None is the default policy, resources/release/policy/release.rego."""
    max_epsilon: float = Field(8.0, gt=0)
    max_epsilon_cumulative: float = Field(16.0, gt=0)
    max_mia_auc: float = Field(0.6, ge=0.5, le=1)
    max_mia_tpr_at_1pct_fpr: float = Field(0.05, ge=0, le=1)
    max_canary_exposure: float = Field(6.0, ge=0)
    """Bits: log2|R| means a canary's secret is ranked first of all candidates."""
    max_attribute_advantage: float = Field(0.25, ge=0, le=1)
    max_pii_residual_per_10k: float = Field(50.0, ge=0)
