"""The `assay` command. Exit codes: 0 success, 1 error, 2 bad usage, 3 release blocked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import duckdb
import polars as pl

from pipelines.output import console, emit, print_frame
from pipelines.params import ParamsError, load_params
from resources.core import audit
from resources.core.ledger import Ledger, LedgerError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3


def _ledger(params_file: str) -> Ledger:
    """The ledger params name, for reading: an error (not a new empty ledger) if it is absent."""
    ledger = Ledger(load_params(params_file).ledger_path)
    if not ledger.path.exists():
        raise click.ClickException(f"no ledger at {ledger.path}: run `assay run` first")
    return ledger


def _group_params(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """A subcommand's --params, else the group's (--params or $ASSAY_PARAMS), else the default."""
    if value is not None:
        return value
    return (ctx.find_root().obj or {}).get("params_file", "params.yaml")


params_option = click.option(
    "--params",
    "params_file",
    default=None,
    callback=_group_params,
    expose_value=True,
    help="params.yaml path (also accepted before the subcommand)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--params",
    "params_file",
    envvar="ASSAY_PARAMS",
    default="params.yaml",
    show_default=True,
    help="params.yaml path, for every subcommand (or $ASSAY_PARAMS)",
)
@click.version_option(package_name="assay", prog_name="assay")
@click.pass_context
def cli(ctx: click.Context, params_file: str) -> None:
    """assay: audited training data, with every record's story in one ledger."""
    ctx.obj = {"params_file": params_file}


@cli.command()
@params_option
@click.option("--select", default=None, help="comma-separated asset names (default: all)")
def run(params_file: str, select: str | None) -> None:
    """Materialize the pipeline in-process; print a summary per source at the end."""
    from pipelines.runner import run_pipeline

    selection = [s.strip() for s in select.split(",")] if select else None
    ok = run_pipeline(params_file, selection, console)
    sys.exit(0 if ok else EXIT_ERROR)


@cli.command()
@params_option
@click.option("--port", default=3000, show_default=True)
def ui(params_file: str, port: int) -> None:
    """Start the Dagster UI on 127.0.0.1."""
    from pipelines.runner import dagster_home

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(params_file))}
    env["ASSAY_PARAMS"] = str(Path(params_file).resolve())
    workspace = Path(params_file).resolve().parent / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")
    args = [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    os.execvpe(args[0], args, env)


@cli.command()
@click.option("--out", default="data", show_default=True, help="where raw/ and hashlists/ go")
def sample(out: str) -> None:
    """Rebuild the sample corpus (data/raw) and the demo hash list, deterministically."""
    from pipelines.sample import build_sample

    counts = build_sample(Path(out))
    for name, n in counts.items():
        click.echo(f"{name:10s} {n:5d} items")


@cli.group()
def ledger() -> None:
    """Ask the ledger: stats, sources, why, incidents, sql, verify, export, reasons."""


@ledger.command()
@params_option
@json_option
def stats(params_file: str, as_json: bool) -> None:
    """Row counts, chain length, latest counts per stage, drops by reason."""
    data = audit.stats(_ledger(params_file))
    if as_json:
        emit(data, True)
        return
    console.print(
        f"ledger {data['ledger']}: {data['chain_entries']} chain entries, {data['runs']} runs"
    )
    print_frame(pl.DataFrame(data["latest_stage_counts"]), "latest counts per stage and source")
    reasons = pl.DataFrame(
        {
            "reason": list(data["dropped_by_reason"]),
            "dropped": list(data["dropped_by_reason"].values()),
        }
    )
    print_frame(reasons, "dropped by reason (latest runs)")


@ledger.command()
@params_option
@json_option
def sources(params_file: str, as_json: bool) -> None:
    """Every source: license, consent, origin, content hash and counts."""
    frame = audit.sources(_ledger(params_file))
    short = frame.drop("uri", "owner").with_columns(pl.col("content_sha256").str.head(12))
    emit(frame.to_dicts(), as_json, short, "sources (assay ledger sources --json for all)")


@ledger.command()
@click.argument("key")
@params_option
@json_option
def why(key: str, params_file: str, as_json: bool) -> None:
    """Where a record (record_id or source_key) came from, and what happened to it."""
    found = audit.why(_ledger(params_file), key)
    if not found:
        raise click.ClickException(f"no record or source_key {key!r} in the ledger")
    if as_json:
        emit(found, True)
        return
    for occ in found:
        src = occ["source"] or {}
        console.print(f"[bold]{occ['source_id']}[/] {occ['source_key']}  record {occ['record_id']}")
        console.print(f"  source   {src.get('uri')}  retrieved {src.get('retrieved_at')}")
        console.print(f"  license  {src.get('license')}   consent {src.get('consent')}")
        for drop in occ["drops"]:
            evidence = json.dumps(drop["evidence"])
            console.print(f"  dropped  at {drop['stage']}: {drop['reason']}  {evidence}")
        console.print(f"  fate     {occ['fate']}")


@ledger.command()
@click.argument("query")
@params_option
@json_option
def sql(query: str, params_file: str, as_json: bool) -> None:
    """Run read-only SQL against the ledger."""
    frame = audit.user_sql(_ledger(params_file), query)
    emit(frame.to_dicts(), as_json, frame)


@ledger.command()
@click.option(
    "--since-checkpoint",
    is_flag=True,
    help="Re-read only the rows appended after the newest signed checkpoint that holds.",
)
@params_option
@json_option
def verify(since_checkpoint: bool, params_file: str, as_json: bool) -> None:
    """Recompute the hash chain and check every signed checkpoint; exit 1 naming what broke."""
    result = _ledger(params_file).verify(_trusted_fingerprint(params_file), since_checkpoint)
    data = {
        "ok": result.ok,
        "entries": result.entries,
        "checkpoints": result.checkpoints,
        "first_bad_entry": result.first_bad,
        "problem": result.problem,
        "rows_reread_after_entry": result.since,
        "rows_checked": result.rows_checked,
    }
    if as_json:
        emit(data, True)
    elif result.ok:
        scope = f", rows after entry {result.since} re-read" if result.since else ""
        console.print(
            f"ledger OK: {result.entries} entries, hash chain intact,"
            f" {result.checkpoints} signed checkpoint(s) hold{scope}"
        )
    else:
        console.print(f"ledger BROKEN at entry {result.first_bad}: {result.problem}")
    sys.exit(0 if result.ok else EXIT_ERROR)


@ledger.command()
@click.argument("out_dir", default="data/ledger_export")
@params_option
@json_option
def export(out_dir: str, params_file: str, as_json: bool) -> None:
    """Write every ledger table to Parquet."""
    paths = [str(p) for p in _ledger(params_file).export(out_dir)]
    emit({"exported": paths}, as_json) if as_json else click.echo("\n".join(paths))


@ledger.command()
@click.option("--export", "export_dir", default=None, help="also write incidents.json and .csv")
@params_option
@json_option
def incidents(export_dir: str | None, params_file: str, as_json: bool) -> None:
    """Known-harmful matches, new and retroactive: hashes, list, time, counts; no content."""
    from resources.screen.incidents import export_incidents, incident_report

    found = _ledger(params_file)
    exported = [str(p) for p in export_incidents(found, export_dir)] if export_dir else []
    report = {**incident_report(found), "exported": exported}
    if as_json:
        emit(report, True)
        return
    rows = pl.DataFrame(report["incidents"], infer_schema_length=None)
    if rows.height:
        rows = rows.with_columns(
            pl.col("incident_id").str.slice(0, 12), pl.col("affected_artifacts").list.len()
        )
        shown = ["incident_id", "kind", "detected_at", "list_name", "hash_type", "distance"]
        print_frame(
            rows.select(*shown, "source_id", "source_key", "affected_artifacts"), "incidents"
        )
    console.print(f"{report['counts']['incidents']} incident(s): {report['counts']['by_kind']}")
    for path in exported:
        console.print(f"exported {path}")


@ledger.command()
@json_option
def reasons(as_json: bool) -> None:
    """The reason codes a drop can carry, and what each means."""
    from resources.core.reasons import Reason, describe

    frame = pl.DataFrame(
        {"reason": [str(r) for r in Reason], "meaning": [describe(r) for r in Reason]}
    )
    emit(frame.to_dicts(), as_json, frame, "reason codes")


def _key_path(params_file: str) -> Path:
    from resources.release.keys import key_path

    params = load_params(params_file)
    return key_path(params.root, params.release.signing_key)


def _trusted_fingerprint(params_file: str) -> str | None:
    """The project's key's fingerprint, when it has one: checkpoints must be signed by it."""
    from resources.release.keys import try_signer

    signer = try_signer(_key_path(params_file))
    return signer.fingerprint if signer else None


@cli.command()
@params_option
@click.option("--check", is_flag=True, help="evaluate and print the verdict; write nothing")
@json_option
def release(params_file: str, check: bool, as_json: bool) -> None:
    """Evaluate the release gate; write and sign data/release/<id>/. Exit 3 when blocked."""
    import uuid

    from pipelines.resource import CODE_VERSION
    from resources.release.stage import run as release_run

    params = load_params(params_file)
    ledger = Ledger(params.ledger_path)
    run_id = f"cli-release-{uuid.uuid4()}"
    if not check:
        from resources.release.keys import load_signer

        load_signer(_key_path(params_file))  # no key: say how to make one, record nothing
        row = {"run_id": run_id, "job": "assay release", "code_version": CODE_VERSION}
        ledger.append("runs", [row | {"params_digest": params.digest()}])
    from assets.release import settings

    outcome = release_run(
        params.release, ledger, run_id, params.corpus(), settings=settings(params), check=check
    )
    data = {
        "release_id": outcome.release_id,
        "status": outcome.verdict.status,
        "violations": outcome.verdict.violations,
        "path": str(outcome.path) if outcome.path else None,
        "auditor_page": str(outcome.auditor_page) if outcome.auditor_page else None,
        "training_run_id": outcome.facts["training_run"]["run_id"],
    }
    if as_json:
        emit(data, True)
    else:
        where = f" -> {outcome.path}" if outcome.path else " (--check: nothing written)"
        console.print(f"release {outcome.verdict.status}{where}", soft_wrap=True)
        for violation in outcome.verdict.violations:
            console.print(
                f"  blocked by {violation['rule']}: {violation['reason']}", soft_wrap=True
            )
    sys.exit(0 if outcome.verdict.passed else EXIT_BLOCKED)


@cli.command()
@params_option
@click.option("--out", "out_dir", default=None, help="where to write (default: data/report/)")
@click.option(
    "--release",
    "release_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="regenerate this release's report and page, from the ledger up to its signed head",
)
@json_option
def report(params_file: str, out_dir: str | None, release_dir: Path | None, as_json: bool) -> None:
    """Write the transparency report (JSON, Markdown) and the auditor's page from the ledger."""
    from resources.evidence.bundle import ledger_evidence, release_evidence, write_report
    from resources.release.policy import read_policy
    from resources.release.stage import decide, policy_path

    params = load_params(params_file)
    ledger = _ledger(params_file)
    if release_dir is not None:
        evidence = release_evidence(ledger, release_dir)
        out = Path(out_dir) if out_dir else params.data_dir / "report" / release_dir.name
    else:
        corpus = params.corpus()
        gathered, data, verdict = decide(params.release, ledger, corpus)
        policy = read_policy(policy_path(params.release, corpus))
        gate = {"facts": gathered, "data": data, "policy": policy}
        evidence = ledger_evidence(ledger, gate, verdict.status, verdict.violations)
        out = Path(out_dir) if out_dir else params.data_dir / "report"
    written = {name: str(path) for name, path in write_report(evidence, out).items()}
    if as_json:
        emit({"scope": evidence["scope"], "written": written}, True)
        return
    console.print(f"transparency report ({evidence['scope']}) -> {out}", soft_wrap=True)
    for name, path in written.items():
        console.print(f"  {name}: {path}", soft_wrap=True)


@cli.command("verify")
@click.argument("release_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--revocations",
    type=click.Path(path_type=Path),
    default=None,
    help="the revocation list (default: revocations.json beside the release)",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="pin the signer: the release must be signed by this public key (PEM)",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    default=None,
    help="check the signed ledger head against this ledger (default: the project's, if any)",
)
@params_option
@json_option
def verify_release(
    release_dir: Path,
    revocations: Path | None,
    public_key: Path | None,
    ledger_path: Path | None,
    params_file: str,
    as_json: bool,
) -> None:
    """Check a release offline: signatures, files, subjects, verdict, ledger head, revocation."""
    from resources.core.signing import fingerprint
    from resources.release.verify import verify_release as check_release

    project = Path(params_file).exists()  # a downstream user has a release, not a project
    trusted = fingerprint(public_key.read_text()) if public_key else None
    if trusted is None and project:
        trusted = _trusted_fingerprint(params_file)
    if ledger_path is None and project:
        ledger_path = load_params(params_file).ledger_path
    ledger = Ledger(ledger_path) if ledger_path and ledger_path.exists() else None
    checks = check_release(release_dir, revocations, ledger, trusted)
    ok = all(c.ok for c in checks)
    if as_json:
        emit({"ok": ok, "release": str(release_dir), "checks": [c.__dict__ for c in checks]}, True)
    else:
        for c in checks:
            mark = "[green]ok  [/]" if c.ok else "[red]FAIL[/]"
            console.print(f"{mark} {c.name}: {c.detail}", soft_wrap=True, highlight=False)
        console.print(f"release {release_dir.name}: {'VERIFIED' if ok else 'NOT VERIFIED'}")
    sys.exit(0 if ok else EXIT_ERROR)


@cli.group()
def keys() -> None:
    """The release signing key (ECDSA P-256, outside git)."""


@keys.command("init")
@params_option
def keys_init(params_file: str) -> None:
    """Make the signing key pair (0600) unless it exists.

    The path is $ASSAY_SIGNING_KEY, else params.yaml release.signing_key.
    """
    from resources.core.signing import Signer
    from resources.release.keys import init_key

    path, created = init_key(_key_path(params_file))
    signer = Signer.load(path)
    state = "created" if created else "exists"
    click.echo(f"{state}: {path} (fingerprint {signer.fingerprint})")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.UsageError as err:
        err.show()
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_ERROR)
    except click.Abort:
        sys.exit(EXIT_ERROR)
    except ParamsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE)
    except (LedgerError, duckdb.Error, FileNotFoundError, ValueError) as err:
        click.echo(f"error: {_one_line(err)}", err=True)
        sys.exit(EXIT_ERROR)


def _one_line(err: Exception) -> str:
    """An error's first line: DuckDB's messages carry a multi-line context block."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
