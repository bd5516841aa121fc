"""``ledger serve`` (the HTTP API under uvicorn) and ``ledger token create|list|revoke``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table

from cli.common import EXIT_USAGE, console, fail, open_ledger, print_json
from cli.main import DB_OPTION, JSON_OPTION, app
from domain.clock import format_datetime_vn, parse_moment

token_app = typer.Typer(help="Bearer tokens for agency systems.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", envvar="LEDGER_API_HOST",
                             help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, envvar="LEDGER_API_PORT"),
    workers: int = typer.Option(1, min=1, max=64, envvar="LEDGER_API_WORKERS",
                                help="Worker processes (each opens its own connection pool)."),
    db: str | None = DB_OPTION,
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
    with_worker: bool = typer.Option(
        False, "--with-worker", envvar="LEDGER_API_EMBEDDED_WORKER",
        help="Also keep the read models current inside this process (a single-machine "
             "setup without `ledger worker`)."),
) -> None:
    """Run the HTTP API (OpenAPI at /docs). Settings: LEDGER_API_* (see docs/api.md)."""
    import uvicorn

    from domain.persistence.url import StoreURLError, parse_store_url

    if db:
        os.environ["LEDGER_DATABASE_URL"] = db
    try:
        store = parse_store_url(db)
    except StoreURLError as exc:
        fail(str(exc), EXIT_USAGE)
    os.environ["LEDGER_API_LOG_LEVEL"] = log_level
    os.environ["LEDGER_API_EMBEDDED_WORKER"] = "true" if with_worker else "false"
    if store.dialect == "sqlite" and workers > 1:
        console.print("[yellow]note:[/] several workers on SQLite serialise on its write lock",
                      highlight=False)
    # Open the store once before uvicorn starts: a database that cannot be reached is one
    # line and exit 3 here, where each worker process would print a traceback and the
    # supervisor then exit 0. (It also creates the tables once, before the processes fork.)
    with open_ledger(db):
        pass
    err = typer.echo
    err(f"ledger serve: {store.redacted} on http://{host}:{port} ({workers} worker(s))",
        err=True)
    uvicorn.run("service.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=False, proxy_headers=False)


def _tables(ledger):
    from service.storage import ServiceTables
    from service.tokens import TokenStore

    tables = ServiceTables(ledger)
    tables.create()
    return TokenStore(tables)


def _expiry(expires: str | None, days: int | None) -> datetime | None:
    if expires and days:
        raise typer.BadParameter("give --expires or --days, not both")
    if days:
        return datetime.now(UTC) + timedelta(days=days)
    if expires:
        try:
            return parse_moment(expires)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return None


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., help="office | agency | inspector | admin"),
    agency: str | None = typer.Option(None, help="Agency code (required for role agency)."),
    label: str | None = typer.Option(None, help="Who or what uses it (shown in lists)."),
    expires: str | None = typer.Option(None, help="Expiry: a date (end of that day, Vietnam) "
                                                  "or an ISO 8601 moment."),
    days: int | None = typer.Option(None, min=1, help="Expire after this many days."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a token. The secret is printed once and stored only as a hash."""
    import getpass

    expires_at = _expiry(expires, days)
    with open_ledger(db) as ledger:
        secret, info = _tables(ledger).create(role=role, agency=agency, label=label,
                                              expires_at=expires_at,
                                              created_by=f"cli:{getpass.getuser()}")
    if as_json:
        print_json({**info.as_json(), "token": secret})
        return
    console.print(f"token {info.token_id} ({info.role.value}"
                  f"{', ' + info.agency if info.agency else ''}); keep it secret, it is shown "
                  "only once:", highlight=False)
    print(secret)


@token_app.command("list")
def token_list(db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Tokens (never their secrets)."""
    with open_ledger(db) as ledger:
        tokens = _tables(ledger).list()
    if as_json:
        print_json([t.as_json() for t in tokens])
        return
    table = Table()
    for column in ("Id", "Vai trò", "Cơ quan", "Nhãn", "Tạo lúc", "Hết hạn", "Thu hồi"):
        table.add_column(column)
    for t in tokens:
        table.add_row(t.token_id, t.role.value, t.agency or "", t.label or "",
                      format_datetime_vn(t.created_at), format_datetime_vn(t.expires_at),
                      format_datetime_vn(t.revoked_at))
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="The token's id (from list)."),
                 db: str | None = DB_OPTION) -> None:
    """Revoke a token at once."""
    with open_ledger(db) as ledger:
        info = _tables(ledger).revoke(token_id)
    console.print(f"token {info.token_id} revoked ({format_datetime_vn(info.revoked_at)})")
