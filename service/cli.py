"""The `peil` command: serve, db upgrade, instruments check, keys, results rebuild, purge, demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.config import REPO_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from alembic.config import Config

app = typer.Typer(help="Peil: pulse surveys on careers and psychological safety.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
instruments_app = typer.Typer(help="Survey instruments.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
export_app = typer.Typer(help="The export of safe aggregates (PEIL_EXPORT_TARGET).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(instruments_app, name="instruments")
app.add_typer(keys_app, name="keys")
app.add_typer(export_app, name="export")
results_app = typer.Typer(help="Result tables of closed waves.", no_args_is_help=True)
app.add_typer(results_app, name="results")


@app.callback()
def _every_command() -> None:
    """Every command's log records go through the same redaction as the service's: no answer, token or key in a
    cron mail."""
    from service.logs import log_to_stderr

    log_to_stderr()


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["url"] = get_settings().database_url
    return config


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION ('base' empties it)."""
    from alembic import command

    command.downgrade(_alembic_config(), revision)


@instruments_app.command("check")
def instruments_check(
    root: Annotated[Path | None, typer.Option(help="folder of instrument files")] = None,
) -> None:
    """Validate every instrument file; report each problem with the file, the item and what is wrong."""
    from service.instruments.loader import check_definitions

    folder = root or get_settings().definitions_dir
    problems = check_definitions(folder)
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {folder}", err=True)
        raise typer.Exit(1)
    files = sorted(folder.glob("*/*.yaml"))
    typer.echo(f"{len(files)} instrument file(s) valid: {', '.join(str(f.relative_to(folder)) for f in files)}")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="hr, dashboard, admin or manager")],
    name: Annotated[str, typer.Option(help="who or what uses the key")],
    unit: Annotated[str | None, typer.Option(help="a manager key's unit: it reads this unit and all below")] = None,
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from service import audit
    from service.db import make_engine, make_sessionmaker, transaction
    from service.keys import repository
    from service.models.api_key import ROLES

    if role not in ROLES:
        typer.echo(f"--role must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    engine = make_engine(get_settings().database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            row, key = repository.create(session, role=role, name=name, unit=unit)
            key_id = row.id
            scoped: dict[str, Any] = {"unit": unit} if unit else {}  # a manager key's unit
            audit.record(session, "peil keys create", "key.created", key_id=key_id, role=role, name=name, **scoped)
    except ValueError as exc:
        typer.echo(f"peil keys create: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    scope = f", unit {unit}" if unit else ""
    typer.echo(f"# key {key_id} ({role}{scope}, {name}); shown once, store it now")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke the key with id KEY_ID: it stops working at once."""
    from service import audit
    from service.db import make_engine, make_sessionmaker, transaction
    from service.keys import repository

    engine = make_engine(get_settings().database_url)
    with transaction(make_sessionmaker(engine)) as session:
        row = repository.revoke(session, key_id)
        if row is not None:
            audit.record(session, "peil keys revoke", "key.revoked", key_id=key_id)
    engine.dispose()
    if row is None:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id} ({row.role}, {row.name})")


@keys_app.command("list")
def keys_list() -> None:
    """List keys: id, role (a manager key with its unit), name, created, last used, revoked."""
    from service.db import make_engine, make_sessionmaker
    from service.keys import repository

    engine = make_engine(get_settings().database_url)
    with make_sessionmaker(engine)() as session:
        units = repository.unit_keys(session)
        for row in repository.list_all(session):
            role = row.role if row.unit_id is None else f"{row.role}:{units.get(row.unit_id)}"
            typer.echo(
                f"{row.id}\t{role}\t{row.name}\tcreated {row.created_at:%Y-%m-%d}\t"
                f"last used {row.last_used_at or '-'}\t{'revoked' if row.revoked_at else 'active'}"
            )
    engine.dispose()


@export_app.command("run")
def export_run(
    wave: Annotated[list[int] | None, typer.Option("--wave", help="export this wave (repeatable)")] = None,
    full: Annotated[bool, typer.Option("--full", help="re-export every wave")] = False,
) -> None:
    """Export waves closed or rebuilt since the last successful run (all with --full) to PEIL_EXPORT_TARGET."""
    import sys
    from contextlib import nullcontext

    from service.db import make_engine, make_sessionmaker
    from service.exports.service import ExportBusy, run_export

    settings = get_settings()
    engine = make_engine(settings.database_url)
    on_terminal = sys.stdout.isatty()  # a bar for people; cron and CI logs get the summary line only
    bar_context = typer.progressbar(length=1, label="exporting", file=sys.stdout) if on_terminal else nullcontext()
    try:
        with bar_context as bar:

            def progress(done: int, total: int, label: str) -> None:
                if bar is not None:
                    bar.length, bar.label = max(total, 1), label
                    bar.update(done - bar.pos)

            run = run_export(
                make_sessionmaker(engine),
                settings,
                trigger="cli",
                actor="peil export run",
                full=full,
                waves=wave,
                progress=progress,
            )
    except ExportBusy as exc:
        typer.echo(f"peil export: {exc}", err=True)
        raise typer.Exit(75) from exc  # EX_TEMPFAIL: an external scheduler may retry later
    except ValueError as exc:
        typer.echo(f"peil export: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    if run.status != "succeeded":
        typer.echo(f"export run {run.id} failed: {run.error}", err=True)
        raise typer.Exit(1)
    waves = ", ".join(map(str, run.waves)) or "none (nothing new)"
    typer.echo(f"export run {run.id} to {run.target}: waves {waves}; {sum(run.rows.values()):,} rows")


def _secret_or_exit(settings: Settings) -> None:
    """Exit with a message saying what to set when the secret key is missing or unusable."""
    try:
        settings.secret()
    except (ValueError, OSError) as exc:
        typer.echo(f"peil: cannot start: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Run the service with uvicorn (access logs never show link tokens)."""
    import uvicorn

    from service.db import make_engine, make_sessionmaker
    from service.instruments.loader import InstrumentError, load_definitions
    from service.instruments.registry import PublishedInstrumentChanged, publish
    from service.invitations.sender import ServerUnavailable
    from service.logs import log_config

    settings = get_settings()
    _secret_or_exit(settings)  # here, with a clear message, rather than in every worker's start-up
    try:
        _check_mail(settings)
        engine = make_engine(settings.database_url)
        publish(make_sessionmaker(engine), load_definitions(settings.definitions_dir))
        engine.dispose()
    except (InstrumentError, PublishedInstrumentChanged, ValueError, ServerUnavailable) as exc:
        typer.echo(f"peil: cannot start: {exc}", err=True)
        raise typer.Exit(1) from exc
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(),
        server_header=False,
        proxy_headers=False,  # forwarding headers are read by service.clients, from PEIL_TRUSTED_PROXIES only
    )


def _check_mail(settings: Settings) -> None:
    """Production refuses to start without a mail target it can reach; elsewhere an unreachable one is a warning
    (mail waits until it can be sent)."""
    from service.invitations.sender import ServerUnavailable, check_target

    try:
        check_target(settings.mail_target())
    except ServerUnavailable as exc:
        if settings.is_production:
            raise
        typer.echo(f"peil: warning: {exc}; mail waits until it can be sent", err=True)


@app.command()
def purge(
    older_than: Annotated[int, typer.Option("--older-than", min=0, help="days since the wave closed")],
    dry_run: Annotated[bool, typer.Option(help="only count what would be deleted")] = False,
) -> None:
    """Delete the answers of waves closed more than DAYS ago; their stored results and exports stay."""
    from datetime import timedelta

    from service.db import make_engine, make_sessionmaker, transaction
    from service.waves.purge import purge as purge_waves
    from service.waves.purge import reclaim

    engine = make_engine(get_settings().database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            done = purge_waves(session, timedelta(days=older_than), actor="peil purge", dry_run=dry_run)
        if not dry_run and any(not w.skipped for w in done):
            reclaim(engine)  # the deleted answers must not linger in the files
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    for wave in done:
        if wave.skipped:
            typer.echo(f"wave {wave.wave_id} ({wave.name}): kept, {wave.skipped}", err=True)
        else:
            closed = f"{wave.closed_at:%Y-%m-%d}"
            typer.echo(f"wave {wave.wave_id} ({wave.name}), closed {closed}: {verb} {wave.responses} responses")
    if not any(not w.skipped for w in done):
        typer.echo(f"nothing to purge: no answers of waves closed more than {older_than} days ago")


@results_app.command("rebuild")
def results_rebuild(wave_id: int) -> None:
    """Compute the result table of closed wave WAVE_ID again from its answers, and store it (audited).

    The same steps as the close job (``service.waves.close``), run now, under the wave's lease.
    """
    from service.db import make_engine, make_sessionmaker
    from service.errors import PeilError
    from service.instruments.loader import load_definitions
    from service.waves import close

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        done = close.rebuild(
            make_sessionmaker(engine),
            wave_id,
            load_definitions(settings.definitions_dir),
            actor="peil results rebuild",
        )
    except PeilError as exc:
        typer.echo(f"peil: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    table = done.table
    hidden = sum(cell.suppressed for cell in table.cells)
    typer.echo(
        f"wave {wave_id}: result table rebuilt, {len(table.cells)} cells ({hidden} hidden), {len(table.flags)} flags"
    )


@app.command()
def demo(
    once: Annotated[
        bool, typer.Option(help="if the demo organisation exists, only hand out a new key and links")
    ] = False,
    seed: int = 7,
) -> None:
    """Build a demo organisation with a closed wave of synthetic answers and an open pulse wave."""
    from service.demo import run

    settings = get_settings()
    _secret_or_exit(settings)  # the demo's links are derived under the secret
    for line in run(settings, once=once, seed=seed):
        typer.echo(line)


def main() -> None:
    app(prog_name="peil")


if __name__ == "__main__":
    main()
