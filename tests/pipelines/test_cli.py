import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from click.testing import CliRunner

from pipelines.cli import cli
from tests.conftest import REPO

ASSAY = str(Path(sys.executable).with_name("assay"))


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_why_by_source_key_tells_source_license_consent_and_fate(ingested):
    result = _invoke("ledger", "why", "post-0003", "--params", str(ingested), "--json")
    assert result.exit_code == 0
    (occurrence,) = json.loads(result.output)
    assert occurrence["source_id"] == "forum"
    assert occurrence["source"]["license"] == "CC-BY-4.0"
    assert occurrence["source"]["consent"] == "opt_in"
    assert occurrence["fate"] == "kept through ingest"


def test_why_by_record_id_finds_every_occurrence(ingested):
    first = json.loads(
        _invoke("ledger", "why", "post-0003", "--params", str(ingested), "--json").output
    )[0]
    result = _invoke("ledger", "why", first["record_id"], "--params", str(ingested), "--json")
    keys = {o["source_key"] for o in json.loads(result.output)}
    assert keys == {"post-0003", "post-dup-exact"}


def test_why_a_dropped_item_gives_the_reason(ingested):
    result = _invoke("ledger", "why", "latin1.txt", "--params", str(ingested), "--json")
    (occurrence,) = json.loads(result.output)
    assert occurrence["fate"] == "dropped at ingest: encoding"
    assert occurrence["drops"][0]["evidence"]["detail"].startswith("invalid UTF-8")


def test_why_unknown_key_is_an_error(ingested):
    result = CliRunner().invoke(cli, ["ledger", "why", "nope", "--params", str(ingested)])
    assert result.exit_code == 1 and "no record" in result.output


def test_sql_and_sources_print_one_json_document(ingested):
    result = _invoke(
        "ledger", "sql", "SELECT count(*) AS n FROM drops", "--params", str(ingested), "--json"
    )
    assert json.loads(result.output) == [{"n": 54}]  # 49 + 5 harmful_hash_match at the door
    sources = json.loads(_invoke("ledger", "sources", "--params", str(ingested), "--json").output)
    assert {s["source_id"]: s["records"] for s in sources}["scraped"] == 0


def test_verify_exit_codes(ingested, tmp_path):
    assert _invoke("ledger", "verify", "--params", str(ingested)).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(ingested.parent, copy, symlinks=True)
    con = duckdb.connect(str(copy / "data" / "ledger.duckdb"))
    con.execute("UPDATE drops SET reason = 'empty' WHERE source_key = 'latin1.txt'")
    con.close()
    result = _invoke("ledger", "verify", "--params", str(copy / "params.yaml"), "--json")
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert report["ok"] is False and report["first_bad_entry"] >= 1


def test_verify_since_checkpoint_rereads_the_tail_and_catches_an_edit_there(ingested, tmp_path):
    from pipelines.params import load_params
    from resources.core.ledger import Ledger
    from resources.release.keys import key_path, try_signer

    copy = tmp_path / "copy"
    shutil.copytree(ingested.parent, copy, symlinks=True)
    params = load_params(copy / "params.yaml")
    ledger = Ledger(params.ledger_path)
    signed_head = ledger.verify().entries
    ledger.checkpoint(try_signer(key_path(params.root, params.release.signing_key)), "test")
    row = {"stage": "ingest", "source_id": "forum", "records_in": 1, "records_out": 1, "dropped": 0}
    ledger.append("stage_counts", [row], run_id="after-checkpoint")
    args = ("ledger", "verify", "--since-checkpoint", "--params", str(copy / "params.yaml"))

    clean = _invoke(*args, "--json")
    report = json.loads(clean.output)
    assert clean.exit_code == 0 and report["ok"] is True
    assert report["rows_reread_after_entry"] == signed_head  # the checkpoint row and the append

    con = duckdb.connect(str(params.ledger_path))
    con.execute("UPDATE stage_counts SET dropped = 99 WHERE run_id = 'after-checkpoint'")
    con.close()
    broken = _invoke(*args)
    assert broken.exit_code == 1
    # Entry signed_head + 1 is the checkpoint's own row; the edited append comes after it.
    assert f"ledger BROKEN at entry {signed_head + 2}" in broken.output


def test_sample_rebuilds_the_committed_corpus_byte_for_byte(tmp_path):
    result = _invoke("sample", "--out", str(tmp_path))
    assert result.exit_code == 0
    for folder in ("raw", "hashlists"):
        built = sorted(p.relative_to(tmp_path) for p in (tmp_path / folder).rglob("*"))
        committed = sorted(
            p.relative_to(REPO / "data") for p in (REPO / "data" / folder).rglob("*")
        )
        assert built == committed
        for rel in built:
            if not (tmp_path / rel).is_symlink() and (tmp_path / rel).is_file():
                assert (tmp_path / rel).read_bytes() == (REPO / "data" / rel).read_bytes(), rel


def test_exit_codes_for_bad_usage_and_errors(tmp_path):
    usage = subprocess.run([ASSAY, "ledger", "frobnicate"], capture_output=True, text=True)
    assert usage.returncode == 2
    missing = subprocess.run(
        [ASSAY, "ledger", "stats", "--params", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


# -- hardening: read-only SQL, missing ledger, one-line errors, --params once ----------------


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the `assay` entry point in-process: (exit code, stdout, stderr)."""
    from pipelines.cli import main

    monkeypatch.setattr(sys, "argv", ["assay", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_ledger_sql_can_read_nothing_but_the_ledger(ingested, monkeypatch, capsys, tmp_path):
    target = tmp_path / "leak.csv"
    attempts = [
        "SELECT * FROM read_text('/etc/passwd')",
        f"COPY (SELECT * FROM records) TO '{target}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "SELECT 1; SELECT 2",
        "SET enable_external_access = true",
        "DELETE FROM records",
    ]
    for attempt in attempts:
        code, out, err = _main(
            monkeypatch, capsys, "--params", str(ingested), "ledger", "sql", attempt
        )
        assert code == 1, attempt
        assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
        assert "/etc/passwd" not in out and "root:" not in out
    assert not target.exists() and not (tmp_path / "other.duckdb").exists()
    code, out, _ = _main(
        monkeypatch, capsys, "--params", str(ingested), "ledger", "sql", "SELECT 1 AS one", "--json"
    )
    assert code == 0 and json.loads(out) == [{"one": 1}]


def test_ledger_export_does_not_put_its_directory_into_sql(ingested, tmp_path):
    import polars as pl

    hostile = tmp_path / "x' (FORMAT csv); COPY (SELECT 1) TO '/tmp/assay-pwned.csv"
    result = _invoke("ledger", "export", str(hostile), "--params", str(ingested), "--json")
    assert result.exit_code == 0
    assert not Path("/tmp/assay-pwned.csv").exists()
    records = pl.read_parquet(hostile / "records.parquet")
    stored = _invoke(
        "ledger", "sql", "SELECT count(*) AS n FROM records", "--params", str(ingested), "--json"
    )
    assert records.height == json.loads(stored.output)[0]["n"] > 0
    assert (hostile / "chain.parquet").exists()


def test_read_commands_on_a_missing_ledger_say_so_and_create_nothing(project, monkeypatch, capsys):
    ledger = project.parent / "data" / "ledger.duckdb"
    for command in (["ledger", "verify"], ["ledger", "stats"], ["ledger", "why", "abc"]):
        code, out, err = _main(monkeypatch, capsys, "--params", str(project), *command)
        assert code == 1 and "no ledger at" in err, command
        assert "OK" not in out
    assert not ledger.exists()


def test_params_once_on_the_group_or_from_the_environment(ingested, monkeypatch, capsys):
    code, out, _ = _main(
        monkeypatch, capsys, "--params", str(ingested), "ledger", "stats", "--json"
    )
    assert code == 0 and json.loads(out)["chain_entries"] > 0
    code, out, _ = _main(
        monkeypatch, capsys, "ledger", "stats", "--json", "--params", str(ingested)
    )
    assert code == 0  # after the subcommand still works
    monkeypatch.setenv("ASSAY_PARAMS", str(ingested))
    code, out, _ = _main(monkeypatch, capsys, "ledger", "sources", "--json")
    assert code == 0 and len(json.loads(out)) == 6


def test_version_and_config_errors(project, monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, "--version")
    assert code == 0 and out.startswith("assay, version ")
    project.write_text(
        project.read_text().replace("max_record_bytes: 1000000", "max_record_bytes: -4")
    )
    code, _, err = _main(monkeypatch, capsys, "--params", str(project), "ledger", "stats")
    assert code == 2 and "ingest.max_record_bytes" in err


def test_why_takes_a_unique_prefix_of_a_record_id(ingested):
    full = json.loads(
        _invoke("--params", str(ingested), "ledger", "why", "post-0003", "--json").output
    )
    record_id = full[0]["record_id"]
    by_prefix = _invoke("--params", str(ingested), "ledger", "why", record_id[:12], "--json")
    assert by_prefix.exit_code == 0
    assert {o["record_id"] for o in json.loads(by_prefix.output)} == {record_id}


def test_keys_init_makes_the_key_once(tmp_path, monkeypatch):
    import stat

    key = tmp_path / "keys" / "release.pem"
    monkeypatch.setenv("ASSAY_SIGNING_KEY", str(key))
    params = tmp_path / "params.yaml"
    params.write_text("sources: []\n")
    first = _invoke("keys", "init", "--params", str(params))
    assert first.exit_code == 0 and first.output.startswith(f"created: {key}")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = _invoke("keys", "init", "--params", str(params))
    assert again.output.startswith(f"exists: {key}")
    assert first.output.split("fingerprint")[1] == again.output.split("fingerprint")[1]
