# The default release policy of assay (Rego v1). `input` is the facts exported from the ledger
# (policy/facts.json in a release); `data` is params.yaml's policy and release thresholds
# (policy/data.json). Every deny names its rule and why; a release passes when deny is empty.
# A fact that is missing or not a number denies: the gate fails closed.
package assay.release

deny contains {"rule": "license", "reason": reason} if {
	some s in input.sources
	not s.license in data.allowed_licenses
	reason := sprintf("%d training record(s) of source %s have license %s, not allowed", [s.records, s.source_id, s.license])
}

deny contains {"rule": "consent", "reason": reason} if {
	some s in input.sources
	not s.consent in data.allowed_consent
	reason := sprintf("%d training record(s) of source %s have consent basis %s, not allowed", [s.records, s.source_id, s.consent])
}

deny contains {"rule": "open_incident", "reason": reason} if {
	some i in input.incidents
	reason := sprintf("open incident %s touches training record %s", [i.incident_id, i.record_id])
}

deny contains {"rule": "tainted_run", "reason": reason} if {
	some t in input.taints
	reason := sprintf("training run %s is tainted by incident %s (record %s): %s", [input.training_run.run_id, t.incident_id, t.record_id, t.reason])
}

deny contains {"rule": "pii_residual", "reason": "no PII residual re-scan of the scrubbed corpus is in the ledger"} if {
	not input.pii_residual.measured
}

deny contains {"rule": "pii_residual", "reason": reason} if {
	input.pii_residual.measured
	input.pii_residual.max_per_10k > data.max_pii_residual_per_10k
	reason := sprintf("PII residual %.2f per 10k docs (source %s) > %v", [input.pii_residual.max_per_10k, input.pii_residual.source_id, data.max_pii_residual_per_10k])
}

deny contains {"rule": name, "reason": reason} if {
	some name, limit in limits
	value := measured[name]
	not is_number(value)
	reason := sprintf("%s is not in the ledger (limit %v)", [name, limit])
}

deny contains {"rule": name, "reason": reason} if {
	some name, limit in limits
	value := measured[name]
	is_number(value)
	value > limit
	reason := sprintf("%s %v > %v", [name, value, limit])
}

deny contains {"rule": "ledger", "reason": reason} if {
	not input.ledger.ok
	reason := sprintf("ledger verify failed at entry %v: %v", [input.ledger.first_bad, input.ledger.problem])
}

deny contains {"rule": "artifact_digest", "reason": reason} if {
	some a in input.artifacts
	a.actual != a.recorded
	reason := sprintf("%s: sha256 on disk %v, ledger recorded %v", [a.path, a.actual, a.recorded])
}

deny contains {"rule": "training_run", "reason": "no training run in the ledger"} if {
	not is_string(input.training_run.run_id)
}

limits := {
	"epsilon": data.max_epsilon,
	"epsilon_cumulative": data.max_epsilon_cumulative,
	"mia_auc": data.max_mia_auc,
	"mia_tpr_at_1pct_fpr": data.max_mia_tpr_at_1pct_fpr,
	"canary_exposure_max": data.max_canary_exposure,
	"attribute_advantage": data.max_attribute_advantage,
}

measured := {
	"epsilon": input.training_run.epsilon,
	"epsilon_cumulative": input.training_run.epsilon_cumulative,
	"mia_auc": input.evaluation.mia_auc,
	"mia_tpr_at_1pct_fpr": input.evaluation.mia_tpr_at_1pct_fpr,
	"canary_exposure_max": input.evaluation.canary_exposure_max,
	"attribute_advantage": input.evaluation.attr_advantage,
}
