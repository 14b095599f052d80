"""The ledger's tables: name -> column DDL.

The ledger adds its own bookkeeping columns to each (entry_seq, row_no, recorded_at). No
column may hold raw PII or the bytes of a harmful item: only ids, hashes, counts and codes.
"""

RECORD_ID = "record_id VARCHAR USING COMPRESSION uncompressed"
"""A record id is a sha256 in hex: random, so the best a string codec can do is halve it, and
DuckDB's dictionary+FSST took as long to compress 1M ids as inserting all the other columns
of the records table (insert, commit and checkpoint 1.18 -> 0.70 s); the 10M benchmark
ledger grew from 68 to 103 bytes a record, and appends to it from about 1.0M to 1.1-1.4M
rows/s (docs/ledger.md)."""


TABLES: dict[str, str] = {
    "runs": "run_id VARCHAR, job VARCHAR, code_version VARCHAR, params_digest VARCHAR",
    "sources": (
        "source_id VARCHAR, uri VARCHAR, path VARCHAR, license VARCHAR, consent VARCHAR,"
        " retrieved_at TIMESTAMPTZ, owner VARCHAR, content_sha256 VARCHAR, files BIGINT,"
        " run_id VARCHAR"
    ),
    "artifacts": (
        "path VARCHAR, sha256 VARCHAR, size_bytes BIGINT, stage VARCHAR, source_id VARCHAR,"
        " records BIGINT, run_id VARCHAR"
    ),
    "records": (
        f"{RECORD_ID}, source_id VARCHAR, source_key VARCHAR, kind VARCHAR,"
        " size_bytes BIGINT, run_id VARCHAR"
    ),
    "drops": (
        f"stage VARCHAR, {RECORD_ID}, source_id VARCHAR, source_key VARCHAR,"
        " reason VARCHAR, evidence VARCHAR, run_id VARCHAR"
    ),
    "dedup_runs": (
        "mode VARCHAR, processed VARCHAR, carried VARCHAR, threshold DOUBLE, num_perm INTEGER,"
        " bands INTEGER, rows_per_band INTEGER, candidate_pairs BIGINT, verified_pairs BIGINT,"
        " clusters BIGINT, settings_digest VARCHAR, run_id VARCHAR"
    ),
    "stage_counts": (
        "stage VARCHAR, source_id VARCHAR, records_in BIGINT, records_out BIGINT,"
        " dropped BIGINT, run_id VARCHAR"
    ),
    # PII: counts by entity type, never a value. records = records holding that type.
    "pii_counts": (
        "source_id VARCHAR, entity_type VARCHAR, entities BIGINT, records BIGINT, run_id VARCHAR"
    ),
    # One row per record with any PII: its counts per type as JSON ({"EMAIL_ADDRESS": 2}).
    "pii_record_counts": (
        f"{RECORD_ID}, source_id VARCHAR, source_key VARCHAR, entities BIGINT,"
        " counts VARCHAR, dropped BOOLEAN, run_id VARCHAR"
    ),
    # The scrub check's sensitive re-scan of each source's output: its texts, those read (all,
    # or a sample by record_id), the entities still found, and their rate per 10k texts with
    # its upper bound at confidence (the rate itself when every text was read).
    "pii_rescans": (
        "source_id VARCHAR, docs BIGINT, scanned BIGINT, residual BIGINT, per_10k DOUBLE,"
        " per_10k_upper DOUBLE, confidence DOUBLE, run_id VARCHAR"
    ),
    # What that re-scan still found, per entity type (docs: the texts it read).
    "pii_residuals": (
        "source_id VARCHAR, entity_type VARCHAR, residual BIGINT, docs BIGINT,"
        " per_10k DOUBLE, run_id VARCHAR"
    ),
    # A PII detector model the project built (resources/scrub/ner_model.py): what it was trained
    # on (generated text; never a value from the corpus), its recipe and its bytes' digest.
    "detector_models": (
        "name VARCHAR, recipe_digest VARCHAR, model_sha256 VARCHAR, labels VARCHAR,"
        " training_data VARCHAR, train_locales VARCHAR, settings VARCHAR, license VARCHAR,"
        " run_id VARCHAR"
    ),
    # A detector's measured quality and speed (bench/pii.py --ledger), for data cards.
    "detector_benchmarks": (
        "detector VARCHAR, entity_type VARCHAR, support BIGINT, predicted BIGINT,"
        " precision DOUBLE, recall DOUBLE, docs BIGINT, mb DOUBLE, docs_per_s DOUBLE,"
        " mb_per_s DOUBLE, eval_set VARCHAR, params_digest VARCHAR, run_id VARCHAR"
    ),
    # screen: hashes, list identities and locations only, never an item's bytes or text.
    "hash_lists": (
        "name VARCHAR, version VARCHAR, provider VARCHAR, sha256 VARCHAR, path VARCHAR,"
        " entries BIGINT, entries_by_type VARCHAR, low_information BIGINT, run_id VARCHAR"
    ),
    "screen_matches": (
        f"{RECORD_ID}, hash_type VARCHAR, record_hash VARCHAR, orientation VARCHAR,"
        " distance BIGINT, list_name VARCHAR, list_version VARCHAR, list_sha256 VARCHAR,"
        " entry_hash VARCHAR, entry_label VARCHAR, entry_line BIGINT, run_id VARCHAR"
    ),
    "quarantine": (
        f"{RECORD_ID}, source_id VARCHAR, source_key VARCHAR, kind VARCHAR,"
        " location VARCHAR, sha256 VARCHAR, md5 VARCHAR, sha256_text VARCHAR, phash VARCHAR,"
        " dhash VARCHAR, list_name VARCHAR, list_version VARCHAR, list_sha256 VARCHAR,"
        " hash_type VARCHAR, entry_hash VARCHAR, entry_label VARCHAR, distance BIGINT,"
        " run_id VARCHAR"
    ),
    # One row per matched occurrence (record, source, source_key) and list; hashes and the
    # location only. kind: new (caught at the door) or retroactive (a later list, rescreen).
    "incidents": (
        f"incident_id VARCHAR, kind VARCHAR, {RECORD_ID}, source_id VARCHAR,"
        " source_key VARCHAR, location VARCHAR, sha256 VARCHAR, md5 VARCHAR,"
        " sha256_text VARCHAR, phash VARCHAR, dhash VARCHAR, list_name VARCHAR,"
        " list_version VARCHAR, list_sha256 VARCHAR, hash_type VARCHAR, entry_hash VARCHAR,"
        " entry_label VARCHAR, distance BIGINT, entries_matched BIGINT,"
        " affected_artifacts VARCHAR, run_id VARCHAR"
    ),
    # rescreen: an artifact rewritten without records a later list matched.
    "purges": (
        "path VARCHAR, old_sha256 VARCHAR, new_sha256 VARCHAR, rows_removed BIGINT,"
        " record_ids VARCHAR, incident_ids VARCHAR, run_id VARCHAR"
    ),
    # rescreen: a training run whose training set held a record a later list matched.
    "tainted_runs": (
        f"training_run_id VARCHAR, incident_id VARCHAR, {RECORD_ID}, role VARCHAR, run_id VARCHAR"
    ),
    # screen.quarantine_dir: a matched source file moved out of its source folder.
    "quarantine_moves": (
        "source_id VARCHAR, source_key VARCHAR, from_path VARCHAR, to_path VARCHAR,"
        " sha256 VARCHAR, incident_ids VARCHAR, run_id VARCHAR"
    ),
    "artifact_records": (
        f"artifact_sha256 VARCHAR, stage VARCHAR, source_id VARCHAR, {RECORD_ID}, run_id VARCHAR"
    ),
    "training_runs": (
        "run_id VARCHAR, code_version VARCHAR, params_digest VARCHAR, path VARCHAR,"
        " model_sha256 VARCHAR, model_spec VARCHAR,"
        " model_kwargs VARCHAR, upstream VARCHAR, training_set_digest VARCHAR,"
        " train_records BIGINT, heldout_records BIGINT, units BIGINT, privacy_unit VARCHAR,"
        " target_epsilon DOUBLE, epsilon DOUBLE, delta DOUBLE, noise_multiplier DOUBLE,"
        " sample_rate DOUBLE, steps BIGINT, epochs BIGINT, batch_size BIGINT,"
        " max_grad_norm DOUBLE, accountant VARCHAR, poisson_sampling BOOLEAN,"
        " opacus_version VARCHAR, torch_version VARCHAR, seed BIGINT, canaries BIGINT,"
        " canary_insertions BIGINT, train_seconds DOUBLE"
    ),
    "training_set": (
        f"run_id VARCHAR, training_set_digest VARCHAR, {RECORD_ID}, source_id VARCHAR, role VARCHAR"
    ),
    "evaluations": (
        "run_id VARCHAR, model_kind VARCHAR, model_sha256 VARCHAR, epsilon DOUBLE,"
        " heldout_loss DOUBLE, perplexity DOUBLE, mia_auc DOUBLE, mia_tpr_at_1pct_fpr DOUBLE,"
        " mia_members BIGINT, mia_nonmembers BIGINT, canaries BIGINT, canary_insertions BIGINT,"
        " canary_exposure_mean DOUBLE, canary_exposure_max DOUBLE, canary_exposure_bound DOUBLE,"
        " attr_records BIGINT, attr_accuracy DOUBLE, attr_baseline DOUBLE, attr_advantage DOUBLE"
    ),
    "privacy_budget": (
        "training_set_digest VARCHAR, run_id VARCHAR, status VARCHAR, members BIGINT,"
        " epsilon_committed DOUBLE, epsilon_cumulative DOUBLE, epsilon_budget DOUBLE"
    ),
    # The chain head (seq, entry_hash) signed; the same rows go to <ledger>.checkpoints.jsonl.
    "checkpoints": (
        "seq BIGINT, entry_hash VARCHAR, signed_at TIMESTAMPTZ, reason VARCHAR,"
        " key_fingerprint VARCHAR, public_key VARCHAR, signature VARCHAR, run_id VARCHAR"
    ),
    # Every gate decision: PASSED releases and FAILED (blocked) ones alike.
    "releases": (
        "release_id VARCHAR, status VARCHAR, training_run_id VARCHAR, model_sha256 VARCHAR,"
        " training_set_digest VARCHAR, policy_sha256 VARCHAR, facts_sha256 VARCHAR,"
        " violations VARCHAR, path VARCHAR, ledger_head_seq BIGINT, ledger_head_hash VARCHAR,"
        " key_fingerprint VARCHAR, supersedes VARCHAR, run_id VARCHAR"
    ),
    # A signed revocation: signature over the canonical JSON of the row's other fields.
    "revocations": (
        "release_id VARCHAR, reason VARCHAR, incident_ids VARCHAR, record_ids VARCHAR,"
        " revoked_at TIMESTAMPTZ, key_fingerprint VARCHAR, signature VARCHAR, run_id VARCHAR"
    ),
    # A run that died or failed: its rows stay (append-only) but counts, why and the gate
    # ignore them. detail names how it ended (process gone, step failure).
    "failed_runs": "run_id VARCHAR, job VARCHAR, detail VARCHAR",
    # A stage that ran with nothing it could use (train with no text records): why it skipped.
    "stage_skips": "stage VARCHAR, reason VARCHAR, detail VARCHAR, run_id VARCHAR",
}
