"""Integrity commands: ``ledger keys create|export-public``, ``ledger checkpoint``,
``ledger verify``, ``ledger export`` and ``ledger verify-bundle`` (docs/integrity.md).

Exit codes as elsewhere (1 refused, 2 usage, 3 store), plus 4: verification found the store
or the bundle altered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.common import (
    EXIT_DAMAGED,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    open_ledger,
    print_json,
)
from cli.main import DB_OPTION, JSON_OPTION, app
from domain.clock import format_datetime_vn, parse_moment
from domain.integrity import make_checkpoint, verify_ledger
from domain.integrity.bundle import export_bundle, verify_bundle
from domain.integrity.errors import SigningKeyError
from domain.integrity.keys import (
    create_signing_key,
    key_id,
    load_public_key_file,
    load_signing_key,
    public_pem,
    signing_key_path,
)
from domain.integrity.verify import Finding, Report

EXIT_VERIFICATION_FAILED = EXIT_DAMAGED
PROGRESS_THRESHOLD = 20_000  # events; below this a run is quick and shows no bar

keys_app = typer.Typer(help="Ed25519 keys that sign checkpoints.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

KEY_OPTION = typer.Option(
    None, "--key", envvar="LEDGER_SIGNING_KEY",
    help="Private signing key (PEM). Default ~/.config/chidao-ledger/signing-key.pem.")
PUBLIC_KEY_OPTION = typer.Option(
    None, "--public-key", envvar="LEDGER_PUBLIC_KEY",
    help="Trusted public key (PEM) the checkpoints must be signed with; repeatable.")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[tuple[Callable[[int], None],
                                                               Callable[[int], None]]]:
    """(advance, set_total) callbacks; the bar shows on a terminal for long runs only."""
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=err_console, transient=True,
                        disable=not (enabled and err_console.is_terminal))
    task = progress.add_task(label, total=None)

    def set_total(total: int) -> None:
        progress.update(task, total=total, visible=total >= PROGRESS_THRESHOLD)

    with progress:
        yield (lambda n: progress.advance(task, n)), set_total


def _trusted_keys(files: list[Path] | None, key: str | None) -> list[Ed25519PublicKey] | None:
    """--public-key files; else the public half of the signing key, if there is one here;
    else None (checkpoints are then checked against keys stored in the ledger itself)."""
    if files:
        return [load_public_key_file(f) for f in files]
    path = signing_key_path(key)
    if path.exists():
        return [load_signing_key(path).public_key()]
    return None


# -- keys ------------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(key: str | None = KEY_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Create the private key that signs checkpoints (file mode 600; never overwritten)."""
    path, public = create_signing_key(key)
    if as_json:
        print_json({"path": str(path), "key_id": key_id(public),
                    "public_key_pem": public_pem(public).decode("ascii")})
        return
    console.print(f"Created signing key {path} (readable by you only).")
    console.print(f"Key id: {key_id(public)}")
    console.print("Publish its public half: ledger keys export-public --out ledger-public.pem")


@keys_app.command("export-public")
def keys_export_public(
    key: str | None = KEY_OPTION,
    out: Path | None = typer.Option(None, "--out", help="Write the PEM here (default stdout)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print (or write) the public key that verifies checkpoints, as PEM."""
    public = load_signing_key(key).public_key()
    pem = public_pem(public)
    if as_json:
        print_json({"key_id": key_id(public), "public_key_pem": pem.decode("ascii")})
    elif out is not None:
        out.write_bytes(pem)
        console.print(f"Wrote {out} (key id {key_id(public)}).")
    else:
        typer.echo(pem.decode("ascii"), nl=False)


# -- checkpoint ------------------------------------------------------------------------------------


@app.command("checkpoint")
def checkpoint(key: str | None = KEY_OPTION, db: str | None = DB_OPTION,
               as_json: bool = JSON_OPTION) -> None:
    """Sign the current chain head, after re-verifying every event since the last checkpoint."""
    signing_key = load_signing_key(key)
    with open_ledger(db) as ledger:
        made = make_checkpoint(ledger, signing_key)
        latest = None
        if made is None:
            with ledger.integrity.snapshot() as reader:
                latest = reader.latest_checkpoint()
    if as_json:
        print_json({"created": made is not None,
                    "checkpoint": (made or latest).as_json() if (made or latest) else None})
        return
    if made is None:
        assert latest is not None
        console.print(f"Nothing new since checkpoint #{latest.number} "
                      f"(position {latest.position}).")
        return
    console.print(f"Checkpoint #{made.number}: position {made.position}, head "
                  f"{made.head.hex()}, signed {made.signed_at} (key {made.key_id[:16]}…).")


# -- verify ----------------------------------------------------------------------------------------


def _findings_table(findings: list[Finding]) -> Table:
    table = Table(title="Findings")
    for column in ("Position", "What", "Detail"):
        table.add_column(column)
    for f in sorted(findings, key=lambda f: f.position)[:200]:
        table.add_row(str(f.position), f.kind.value, f.message)
    return table


def _report_details(report: Report) -> None:
    if report.latest_checkpoint is not None:
        cp = report.latest_checkpoint
        console.print(f"Latest verified checkpoint: #{cp.number} at position {cp.position}, "
                      f"signed {cp.signed_at}.")
    if report.unsealed:
        start, end = report.unsealed
        console.print(f"Positions {start}–{end} are chained but not yet signed by a "
                      "checkpoint (sealing window).")
    if not report.keys_trusted:
        console.print("[yellow]Warning:[/] checkpoint signatures were checked against the "
                      "public keys stored in the ledger itself; pass --public-key with the "
                      "published key for evidence.")


@app.command("verify")
def verify(
    from_position: int = typer.Option(1, "--from", min=1, help="Start at this position."),
    public_key: list[Path] | None = PUBLIC_KEY_OPTION,
    key: str | None = KEY_OPTION,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recompute the hash chain from the stored events and check the signed checkpoints."""
    trusted = _trusted_keys(public_key, key)
    with open_ledger(db) as ledger, progress_bar("Verifying", not as_json) as (advance, total):
        report = verify_ledger(ledger, from_position=from_position, trusted_keys=trusted,
                               progress=advance, total=total)
    if as_json:
        print_json(report.as_json())
        if not report.ok:
            raise SystemExit(EXIT_VERIFICATION_FAILED)
        return
    if report.ok:
        console.print(report.summary())
        _report_details(report)
        return
    console.print(_findings_table(report.findings))
    _report_details(report)
    fail(report.summary(), EXIT_VERIFICATION_FAILED)


# -- export and offline verification ----------------------------------------------------------


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="The bundle to write (.zip)."),
    until: str | None = typer.Option(
        None, "--until",
        help="Events recorded up to this moment: ISO 8601, or dd/mm/yyyy (end of that day, "
             "Vietnam time). Default: everything."),
    key: str | None = KEY_OPTION,
    no_checkpoint: bool = typer.Option(
        False, "--no-checkpoint", help="Do not sign a checkpoint of the head first."),
    public_key: list[Path] | None = PUBLIC_KEY_OPTION,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write an evidence bundle for inspectors: events, chain, checkpoints, public key."""
    try:
        moment = parse_moment(until) if until else None
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    keys = [load_public_key_file(f) for f in public_key] if public_key else None
    with open_ledger(db) as ledger:
        signed = None
        if not no_checkpoint:
            try:
                signing_key = load_signing_key(key)
            except SigningKeyError as exc:
                if key is not None:
                    raise
                err_console.print(f"[yellow]Warning:[/] {exc}; the newest events in the bundle "
                                  "may not be covered by a checkpoint.")
            else:
                signed = make_checkpoint(ledger, signing_key)
        with progress_bar("Exporting", not as_json) as (advance, total):
            summary = export_bundle(ledger, out, until=moment, public_keys=keys,
                                    progress=advance, total=total)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    info = {
        "path": str(out), "sha256": digest, "events": summary.events,
        "last_position": summary.last_position, "head": summary.head.hex(),
        "tail_events": summary.tail, "checkpoints": summary.checkpoints,
        "sealed_by": summary.sealed_by.as_json() if summary.sealed_by else None,
        "checkpoint_made": signed.as_json() if signed else None,
        "public_keys": list(summary.keys),
    }
    if as_json:
        print_json(info)
        return
    console.print(f"Wrote {out}: positions 1–{summary.last_position} ({summary.events} events), "
                  f"head {summary.head.hex()[:16]}…")
    if summary.sealed_by:
        cp = summary.sealed_by
        console.print(f"Sealed by checkpoint #{cp.number} (position {cp.position}, signed "
                      f"{cp.signed_at}); {summary.tail} later event(s) included as digests.")
    else:
        console.print("[yellow]Not sealed:[/] no signed checkpoint covers the last events.")
    console.print(f"SHA-256 of the bundle: {digest} (send it to the inspector separately)")


@app.command("verify-bundle")
def verify_bundle_command(
    bundle: Path = typer.Argument(..., help="A bundle written by `ledger export`."),
    public_key: list[Path] | None = PUBLIC_KEY_OPTION,
    allow_unsealed: bool = typer.Option(
        False, "--allow-unsealed", help="Accept events not covered by a signed checkpoint."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify an exported bundle offline: no database needed."""
    if not bundle.is_file():
        fail(f"{bundle}: no such file", EXIT_USAGE)
    trusted = [load_public_key_file(f) for f in public_key] if public_key else None
    with progress_bar("Verifying", not as_json) as (advance, total):
        result = verify_bundle(bundle, trusted_keys=trusted, progress=advance, total=total)
    ok = result.ok(allow_unsealed)
    summary = result.summary(allow_unsealed)
    if as_json:
        print_json({"ok": ok, "summary": summary, "problems": result.problems,
                    "sealed": result.sealed, "keys_from_bundle": result.keys_from_bundle,
                    "manifest": result.manifest, "report": result.report.as_json()})
        if not ok:
            raise SystemExit(EXIT_VERIFICATION_FAILED)
        return
    if result.report.findings:
        console.print(_findings_table(result.report.findings))
    for problem in result.problems[:50]:
        console.print(f"- {problem}")
    if result.keys_from_bundle:
        console.print("[yellow]Warning:[/] checkpoints were checked against the key inside the "
                      "bundle; pass --public-key with the published key for evidence.")
    if not ok:
        fail(summary, EXIT_VERIFICATION_FAILED)
    console.print(summary)
    cp = result.report.latest_checkpoint
    if cp is not None:
        console.print(f"Sealed by checkpoint #{cp.number}, signed {cp.signed_at} "
                      f"({format_datetime_vn(_parse_iso(cp.signed_at))} giờ Việt Nam).")


def _parse_iso(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)
