"""The release stage: evaluate the gate on the ledger's facts, write and sign data/release/<id>/.

A release directory holds (PASSED) the model, its config, the preprocessing description, the
training-set manifest (record ids and sources, never content), and always the policy with the
facts and data it was evaluated on, the verdict, the public key and the signatures:

    model.pt  config.json  preprocessing.json  training_set.jsonl
    policy/release.rego  policy/data.json  policy/facts.json  policy/verdict.json
    attestations/provenance.dsse.json (PASSED only)  attestations/verdict.dsse.json
    keys/release.pub.pem  keys/fingerprint.txt
    croissant.json  evidence/  the cards, the transparency report, the auditor's page
                               (resources/evidence/bundle.py; cards and Croissant PASSED only)
    model.sig    OpenSSF model-signing over every other file

A blocked release writes the same without the model and its provenance: a signed FAILED
verdict, never a PASSED one. The ledger records every verdict (releases) and the chain head
is signed (a checkpoint) at every release.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from resources.core.corpus import Corpus
from resources.core.ledger import Ledger
from resources.core.signing import Signer
from resources.core.storage import (
    atomic_path,
    canonical_json,
    file_sha256,
    json_sha256,
    write_text,
)
from resources.evidence.bundle import AUDITOR_PAGE, write_release_evidence
from resources.release import attest, facts
from resources.release.config import DEFAULT_POLICY, ReleaseConfig
from resources.release.keys import key_path, load_signer, try_signer
from resources.release.policy import PASSED, Verdict, evaluate, json_safe, read_policy
from resources.release.revocation import export_revocations
from resources.release.signing import sign_directory

STAGE = "release"
CODE_VERSION = "release-1"
MODEL_FILE = "model.pt"
PUBLIC_KEY = "keys/release.pub.pem"
FINGERPRINT = "keys/fingerprint.txt"
VERDICT = "policy/verdict.json"
PROVENANCE = "attestations/provenance.dsse.json"
VSA = "attestations/verdict.dsse.json"


@dataclass(frozen=True)
class ReleaseOutcome:
    release_id: str | None
    """None for --check, which writes nothing."""
    verdict: Verdict
    facts: dict
    path: Path | None
    auditor_page: Path | None = None
    """The release's evidence/auditor.html: the static page an auditor opens."""


def release_root(data_dir: str | Path) -> Path:
    return Path(data_dir) / STAGE


def policy_path(config: ReleaseConfig, corpus: Corpus) -> Path:
    return DEFAULT_POLICY if config.policy is None else (corpus.root / config.policy).resolve()


def policy_data(config: ReleaseConfig, corpus: Corpus) -> dict:
    """The policy's ``data``: allowed licenses and consent (params policy) and the thresholds."""
    thresholds = config.model_dump(exclude={"signing_key", "policy"})
    return corpus.policy.model_dump() | thresholds


def decide(config: ReleaseConfig, ledger: Ledger, corpus: Corpus) -> tuple[dict, dict, Verdict]:
    """The facts, the policy data and the verdict, writing nothing."""
    signer = try_signer(key_path(corpus.root, config.signing_key))
    gathered = facts.gather(ledger, signer.fingerprint if signer else None)
    data = policy_data(config, corpus)
    return gathered, data, evaluate(read_policy(policy_path(config, corpus)), gathered, data)


def run(
    config: ReleaseConfig,
    ledger: Ledger,
    run_id: str,
    corpus: Corpus,
    settings: dict | None = None,
    check: bool = False,
) -> ReleaseOutcome:
    """Gate the latest training run; unless ``check``, write, sign and record the release.

    ``settings`` are the params sections of the stages before training, described in
    preprocessing.json. Raises MissingKeyError (before writing anything) without a key.
    """
    if check:
        gathered, _, verdict = decide(config, ledger, corpus)
        return ReleaseOutcome(None, verdict, gathered, None)
    private_key = key_path(corpus.root, config.signing_key)
    signer = load_signer(private_key)
    gathered, data, verdict = decide(config, ledger, corpus)
    now = datetime.now(UTC)
    release_id = f"{now:%Y%m%dT%H%M%SZ}-{json_sha256([gathered, data])[:8]}"
    final = release_root(corpus.data_dir) / release_id
    # staged under its own name, so the signed manifest names the release, not a temp folder
    staging = final.parent / f".staging-{release_id}" / release_id
    shutil.rmtree(staging.parent, ignore_errors=True)
    try:
        _write_release(
            staging, release_id, config, ledger, run_id, corpus, settings or {}, signer, now,
            (gathered, data, verdict), private_key,
        )  # fmt: skip
        staging.rename(final)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    export_revocations(ledger, release_root(corpus.data_dir), signer)
    return ReleaseOutcome(release_id, verdict, gathered, final, final / AUDITOR_PAGE)


def _write_release(
    out: Path,
    release_id: str,
    config: ReleaseConfig,
    ledger: Ledger,
    run_id: str,
    corpus: Corpus,
    settings: dict,
    signer: Signer,
    now: datetime,
    decision: tuple[dict, dict, Verdict],
    private_key: Path,
) -> None:
    gathered, data, verdict = decision
    training = gathered["training_run"]
    policy_file = policy_path(config, corpus)
    _write_json(out / "policy/facts.json", gathered)
    _write_json(out / "policy/data.json", data)
    shutil.copyfile(policy_file, out / "policy/release.rego")
    write_text(signer.public_pem, out / PUBLIC_KEY)
    write_text(signer.fingerprint + "\n", out / FINGERPRINT)
    supersedes = previous_release(ledger)
    head = ledger.checkpoint(signer, f"release {release_id}", run_id)
    record = {
        "release_id": release_id,
        "status": verdict.status,
        "violations": verdict.violations,
        "training_run_id": training["run_id"],
        "model_sha256": training["model_sha256"],
        "training_set_digest": training["training_set_digest"],
        "policy_sha256": file_sha256(policy_file),
        "facts_sha256": json_sha256(gathered),
        "ledger_head": {"seq": head["seq"], "entry_hash": head["entry_hash"]},
        "key_fingerprint": signer.fingerprint,
        "supersedes": supersedes,
        "decided_at": now.isoformat(),
    }
    _write_json(out / VERDICT, record)
    if verdict.passed:
        _write_model_files(out, ledger, training, corpus, settings)
        model = (MODEL_FILE, file_sha256(out / MODEL_FILE))
        provenance = attest.provenance(
            model,
            _dependencies(out, training, head, corpus.root),
            {"release_id": release_id, "supersedes": supersedes},
            run_id,
            now.isoformat(),
        )
        _write_json(out / PROVENANCE, attest.sign_envelope(provenance, signer))
    subjects = [(MODEL_FILE, file_sha256(out / MODEL_FILE))] if verdict.passed else []
    subjects += [(VERDICT, file_sha256(out / VERDICT))]
    subjects += [(f"policy/{n}", file_sha256(out / "policy" / n)) for n in ("facts.json",)]
    summary = attest.verification_summary(
        subjects,
        verdict.status,
        ("policy/release.rego", file_sha256(out / "policy/release.rego")),
        [("policy/facts.json", file_sha256(out / "policy/facts.json"))],
        now.isoformat(),
    )
    _write_json(out / VSA, attest.sign_envelope(summary, signer))
    write_release_evidence(ledger, out)  # before signing: model.sig covers the evidence
    sign_directory(out, private_key)
    ledger.append(
        "releases",
        [
            {
                "release_id": release_id,
                "status": verdict.status,
                "training_run_id": training["run_id"],
                "model_sha256": training["model_sha256"],
                "training_set_digest": training["training_set_digest"],
                "policy_sha256": record["policy_sha256"],
                "facts_sha256": record["facts_sha256"],
                "violations": canonical_json(verdict.violations),
                "path": str(release_root(corpus.data_dir) / release_id),
                "ledger_head_seq": head["seq"],
                "ledger_head_hash": head["entry_hash"],
                "key_fingerprint": signer.fingerprint,
                "supersedes": supersedes,
            }
        ],
        run_id,
    )


def previous_release(ledger: Ledger) -> str | None:
    """The latest PASSED release: the one a new release supersedes."""
    rows = ledger.query(
        "SELECT release_id FROM releases WHERE status = ? ORDER BY entry_seq DESC LIMIT 1",
        [PASSED],
    )
    return rows.item() if rows.height else None


def _write_json(path: Path, value: object) -> None:
    write_text(json.dumps(json_safe(value), indent=2, sort_keys=True) + "\n", path)


def _write_model_files(
    out: Path, ledger: Ledger, training: dict, corpus: Corpus, settings: dict
) -> None:
    """The model, its config, the preprocessing description and the training-set manifest."""
    run = ledger.query(
        "SELECT * FROM training_runs WHERE run_id = ? ORDER BY entry_seq DESC LIMIT 1",
        [training["run_id"]],
    ).row(0, named=True)
    with atomic_path(out / MODEL_FILE) as tmp:
        shutil.copyfile(run["path"], tmp)
    if file_sha256(out / MODEL_FILE) != run["model_sha256"]:
        raise ValueError(f"{run['path']} changed while it was copied into the release")
    config = {k: v for k, v in run.items() if k not in ("entry_seq", "row_no", "recorded_at")}
    _write_json(out / "config.json", config)
    _write_json(out / "preprocessing.json", _preprocessing(ledger, corpus, settings))
    manifest = facts.members(ledger, training["run_id"])
    lines = [canonical_json(row) for row in manifest.to_dicts()]
    write_text("\n".join(lines) + "\n", out / "training_set.jsonl")


def _preprocessing(ledger: Ledger, corpus: Corpus, settings: dict) -> dict:
    """What was done to the records before training: stages, their counts, settings, lists."""
    counts = ledger.query(
        "SELECT stage, source_id, records_in, records_out, dropped, run_id FROM stage_counts"
        " QUALIFY row_number() OVER (PARTITION BY stage, source_id ORDER BY entry_seq DESC) = 1"
        " ORDER BY stage, source_id"
    ).to_dicts()
    hash_lists = ledger.query(
        "SELECT DISTINCT name, version, sha256, entries FROM hash_lists ORDER BY name, version"
    ).to_dicts()
    return {
        "stages": ["ingest", "dedup", "scrub", "train"],
        "settings": settings,
        "policy": corpus.policy.model_dump(),
        "latest_stage_counts": counts,
        "hash_lists": hash_lists,
    }


def _dependencies(out: Path, training: dict, head: dict, root: Path) -> list[dict]:
    """SLSA resolved dependencies: training set, params, git commit, ledger head."""
    deps = [
        {
            "name": "training_set",
            "uri": "training_set.jsonl",
            "digest": {"sha256": training["training_set_digest"]},
            "annotations": {"file_sha256": file_sha256(out / "training_set.jsonl")},
        },
        {"name": "params", "digest": {"sha256": training["params_digest"]}},
        {
            "name": "ledger_head",
            "digest": {"sha256": head["entry_hash"]},
            "annotations": {"seq": head["seq"]},
        },
    ]
    commit = git_commit(root)
    if commit:
        deps.append(
            {"name": "git_commit", "uri": f"git+file://{root}", "digest": {"gitCommit": commit}}
        )
    return deps


def git_commit(root: Path) -> str | None:
    """The project's git commit, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
