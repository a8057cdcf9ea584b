"""The ``gateway`` command: run it, inspect it, and operate it without the web console."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from gateway.settings import Settings, load_settings

app = typer.Typer(help="Schakel integration gateway.", no_args_is_help=True)
connectors_app = typer.Typer(help="Connector types: list, pause, resume.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners: list, add, pause, resume.", no_args_is_help=True)
exchanges_app = typer.Typer(help="Exchanges: list, show, replay.", no_args_is_help=True)
dead_app = typer.Typer(help="Dead letters: list, replay.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for people and partner systems.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify, checkpoint, export.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of message bodies.", no_args_is_help=True)
for sub, name in ((connectors_app, "connectors"), (partners_app, "partners"), (exchanges_app, "exchanges"),
                  (dead_app, "dead-letters"), (db_app, "db"), (tokens_app, "tokens"), (audit_app, "audit"),
                  (keys_app, "keys"), (retention_app, "retention")):
    app.add_typer(sub, name=name)


def _plugin_commands() -> None:
    """Installed plugins add their own command groups (``gateway wmo import``) through the entry
    point group ``gateway.commands``; a broken one is reported, never fatal to the other commands."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="gateway.commands"):
        try:
            app.add_typer(entry.load(), name=entry.name)
        except Exception as exc:  # noqa: BLE001 - one plugin's import error must not take the CLI down
            Console(stderr=True).print(f"[yellow]warning:[/yellow] plugin commands {entry.name!r} not loaded: "
                                       f"{type(exc).__name__}")


_plugin_commands()
console = Console()
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the audit log", min=3)]
CLI_ACTOR_NAME = "cli"


def _settings() -> Settings:
    return load_settings()


def _gateway() -> Any:
    from gateway.core.runtime import Gateway
    from gateway.core.store import refuse_unknown_schema, upgrade

    settings = _settings()
    gw = Gateway(settings)
    refuse_unknown_schema(gw.store)
    upgrade(gw.store.url)
    return gw


def _actor() -> Any:
    import getpass

    from gateway.core.audit import Actor

    return Actor(user_id=f"cli:{getpass.getuser()}", role="beheerder", access_point="cli")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _problem_guard(fn: Any, *args: Any) -> Any:
    from gateway.core.problems import Problem

    try:
        return fn(*args)
    except Problem as problem:
        _fail(problem.detail or problem.slug)


# --- running -------------------------------------------------------------------------------------

@app.command()
def serve(host: Optional[str] = None, port: Optional[int] = None) -> None:
    """Run the gateway (API and delivery workers)."""
    import uvicorn

    settings = _settings()
    uvicorn.run("gateway.app:create_app", factory=True, host=host or settings.host, port=port or settings.port,
                log_config=None, access_log=False)


@app.command()
def simulators(port: int = 8100, host: str = "127.0.0.1") -> None:
    """Run the partner simulators of the enabled plugins (each under /<name>)."""
    import uvicorn

    from gateway.core.runtime import Gateway
    from gateway.demo import simulators_app

    uvicorn.run(simulators_app(Gateway(_settings()).registry), host=host, port=port, log_config=None, access_log=False)


@app.command()
def demo(port: Optional[int] = None, simulator_port: int = 8100) -> None:
    """Run the gateway on SQLite with every partner simulator, seeded with fictional data."""
    import uvicorn

    from gateway.app import create_app
    from gateway.demo import configure_simulators, demo_tokens, seed, simulators_app

    settings = _settings()
    port = port or settings.port
    gateway_app = create_app(settings)
    gw = gateway_app.state.gateway
    from gateway.core.store import refuse_unknown_schema, upgrade

    refuse_unknown_schema(gw.store)
    upgrade(gw.store.url)
    created = seed(gw, f"http://127.0.0.1:{simulator_port}")
    tokens = demo_tokens(gw, settings.data_dir / "demo-tokens.json")
    console.print(f"[bold]Schakel demo[/bold] on http://127.0.0.1:{port}  (web console: /console, API docs: /docs)")
    console.print(f"Simulators on http://127.0.0.1:{simulator_port}; partners seeded now: {', '.join(created) or 'none (already there)'}")
    console.print(f"Tokens are in {settings.data_dir / 'demo-tokens.json'}; for people:")
    for role, token in tokens.items():
        if ":" not in role:
            console.print(f"  {role:<13} {token}")

    async def _run() -> None:
        servers = [
            uvicorn.Server(uvicorn.Config(simulators_app(gw.registry), host="127.0.0.1", port=simulator_port,
                                          log_config=None, access_log=False)),
            uvicorn.Server(uvicorn.Config(gateway_app, host="127.0.0.1", port=port, log_config=None, access_log=False)),
        ]
        async def configure() -> None:
            while not all(server.started for server in servers):
                await asyncio.sleep(0.1)
            await asyncio.to_thread(configure_simulators, gw, f"http://127.0.0.1:{simulator_port}",
                                    f"http://127.0.0.1:{port}", tokens)

        await asyncio.gather(*(server.serve() for server in servers), configure())

    asyncio.run(_run())


@app.command()
def plugins() -> None:
    """Installed plugins, which are enabled, and what they register."""
    from gateway.core.plugins import installed_plugins
    from gateway.core.runtime import Gateway

    settings = _settings()
    table = Table("plugin", "installed", "enabled")
    installed = installed_plugins()
    for name in sorted(set(installed) | set(settings.enabled_plugins)):
        table.add_row(name, "yes" if name in installed else "no", "yes" if name in settings.enabled_plugins else "no")
    console.print(table)
    gw = Gateway(settings)
    types = Table("connector type", "version", "partner kind", "messages out", "messages in")
    for connector in gw.registry.connectors.values():
        m = connector.manifest
        types.add_row(m.id, m.version, m.partner_kind, ", ".join(m.messages_out), ", ".join(m.messages_in))
    console.print(types)


# --- database and tokens -------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations."""
    from gateway.core.store import upgrade

    upgrade(_settings().sqlalchemy_url(), revision)
    console.print("database is at " + revision)


@tokens_app.command("create")
def tokens_create(name: str, role: Annotated[str, typer.Option(help="beheerder, hulpverlener, privacy or partner")],
                  partner: Optional[str] = None, days: Optional[int] = None) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    from gateway.core.auth import create_token

    gw = _gateway()
    try:
        with gw.store.transaction() as session:
            row, plain = create_token(session, name, role, partner_id=partner,
                                      expires_in=timedelta(days=days) if days else None, actor=_actor())
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"token {row.id} ({role}) — shown once:")
    print(plain)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    from gateway.core.auth import revoke_token

    gw = _gateway()
    with gw.store.transaction() as session:
        if not revoke_token(session, token_id, _actor()):
            _fail("no active token with that id")
    console.print("revoked")


@tokens_app.command("list")
def tokens_list() -> None:
    from gateway.core.models import ApiToken

    gw = _gateway()
    table = Table("id", "name", "role", "partner", "created", "revoked")
    with gw.store.reading() as session:
        for row in session.scalars(select(ApiToken).order_by(ApiToken.created_at)):
            table.add_row(row.id, row.name, row.role, row.partner_id or "", str(row.created_at), str(row.revoked_at or ""))
    console.print(table)


# --- connectors and partners ---------------------------------------------------------------------

@connectors_app.command("list")
def connectors_list() -> None:
    from gateway.api.connectors import connector_out

    gw = _gateway()
    table = Table("type", "state", "partners", "queued", "parked", "dead", "reason")
    with gw.store.reading() as session:
        for connector_type in sorted(gw.registry.connectors):
            c = connector_out(gw, session, connector_type)
            table.add_row(connector_type, c.state, str(c.partners), str(c.queued), str(c.parked), str(c.dead), c.state_reason or "")
    console.print(table)


def _connector_state(connector_type: str, state: str, reason: str) -> None:
    from gateway.core import partners as partner_registry

    gw = _gateway()
    if connector_type not in gw.registry.connectors:
        _fail(f"no enabled connector type {connector_type!r}")
    with gw.store.transaction() as session:
        _problem_guard(partner_registry.set_connector_state, session, connector_type, state, reason, _actor())
    console.print(f"{connector_type}: {state}")


@connectors_app.command("pause")
def connectors_pause(connector_type: str, reason: Reason) -> None:
    """Hold every message of a connector type; nothing is lost."""
    _connector_state(connector_type, "paused", reason)


@connectors_app.command("resume")
def connectors_resume(connector_type: str, reason: Reason) -> None:
    """Let held messages of a connector type flow again."""
    _connector_state(connector_type, "active", reason)


@partners_app.command("list")
def partners_list() -> None:
    from gateway.core.models import Partner

    gw = _gateway()
    table = Table("id", "type", "name", "endpoint", "state")
    with gw.store.reading() as session:
        for p in session.scalars(select(Partner).order_by(Partner.connector_type, Partner.id)):
            table.add_row(p.id, p.connector_type, p.name, p.endpoint, p.state)
    console.print(table)


@partners_app.command("add")
def partners_add(
    partner_id: str, connector_type: str, name: str, endpoint: str,
    identifier: Annotated[list[str], typer.Option(help="key=value, e.g. gemeentecode=0363")] = [],  # noqa: B006
    config: Annotated[str, typer.Option(help="JSON object; secret fields are stored encrypted")] = "{}",
    serves: Annotated[list[str], typer.Option(help="attribute=value this partner serves, e.g. gemeentecode=0363")] = [],  # noqa: B006
) -> None:
    """Register a partner of a connector type."""
    from pydantic import ValidationError

    from gateway.core import partners as partner_registry

    gw = _gateway()
    if connector_type not in gw.registry.connectors:
        _fail(f"no enabled connector type {connector_type!r}")
    routing: dict[str, list[str]] = {}
    for item in serves:
        key, _, value = item.partition("=")
        routing.setdefault(key, []).append(value)
    try:
        data = partner_registry.PartnerIn(
            id=partner_id, connector_type=connector_type, name=name, endpoint=endpoint,
            identifiers=dict(item.split("=", 1) for item in identifier), config=json.loads(config), routing=routing)
    except (ValidationError, ValueError) as exc:
        _fail(f"invalid partner: {exc}")
    with gw.store.transaction() as session:
        _problem_guard(partner_registry.create, session, data, gw.registry.connectors[connector_type].manifest, gw.box, _actor())
    console.print(f"partner {partner_id} registered")


def _partner_state(partner_id: str, state: str, reason: str) -> None:
    from gateway.core import partners as partner_registry

    gw = _gateway()
    with gw.store.transaction() as session:
        partner = _problem_guard(partner_registry.get, session, partner_id)
        _problem_guard(partner_registry.set_partner_state, session, partner, state, reason, _actor())
    console.print(f"{partner_id}: {state}")


@partners_app.command("pause")
def partners_pause(partner_id: str, reason: Reason) -> None:
    """Hold this partner's messages; nothing is lost."""
    _partner_state(partner_id, "paused", reason)


@partners_app.command("resume")
def partners_resume(partner_id: str, reason: Reason) -> None:
    """Let this partner's held messages flow again."""
    _partner_state(partner_id, "active", reason)


# --- exchanges and dead letters ------------------------------------------------------------------

@exchanges_app.command("list")
def exchanges_list(state: Optional[str] = None, partner: Optional[str] = None, limit: int = 50) -> None:
    from gateway.core.models import Exchange

    gw = _gateway()
    query = select(Exchange).order_by(Exchange.created_at.desc()).limit(limit)
    if state:
        query = query.where(Exchange.state == state)
    if partner:
        query = query.where(Exchange.partner_id == partner)
    table = Table("id", "route", "partner", "state", "attempts", "created", "reason")
    with gw.store.reading() as session:
        for e in session.scalars(query):
            table.add_row(e.id, e.route_id, e.partner_id or "", e.state, str(e.attempts), str(e.created_at)[:19], e.state_reason or "")
    console.print(table)


@exchanges_app.command("show")
def exchanges_show(exchange_id: str) -> None:
    from gateway.core.models import Exchange

    gw = _gateway()
    with gw.store.reading() as session:
        e = session.get(Exchange, exchange_id)
        if e is None:
            _fail("no exchange with that id")
        console.print(f"[bold]{e.id}[/bold] {e.route_id} -> {e.partner_id}: {e.state} ({e.state_reason or ''})")
        console.print(f"fields out: {', '.join(e.fields_out)}; digest {e.payload_digest}; attempts {e.attempts}")
        table = Table("at", "from", "to", "attempt", "reason", "actor")
        for t in e.transitions:
            table.add_row(str(t.at)[:23], t.from_state or "", t.to_state, str(t.attempt or ""), t.reason or "", t.actor or "")
        console.print(table)


def _replay(ids: list[str], reason: str) -> None:
    from gateway.core import outbox

    gw = _gateway()
    with Progress(console=console) as progress:
        task = progress.add_task("replaying", total=len(ids))
        replayed, skipped = outbox.replay_many(gw, ids, _actor(), reason, lambda: progress.advance(task))
    console.print(f"replayed {len(replayed)}, skipped {len(skipped)}")
    for item in skipped:
        console.print(f"  {item['exchange_id']}: {item['reason']}")
    if skipped and not replayed:
        raise typer.Exit(1)


@exchanges_app.command("replay")
def exchanges_replay(exchange_ids: list[str], reason: Reason) -> None:
    """Replay one or more dead letters."""
    _replay(exchange_ids, reason)


@dead_app.command("list")
def dead_list(partner: Optional[str] = None, limit: int = 50) -> None:
    exchanges_list(state="dead", partner=partner, limit=limit)


@dead_app.command("replay")
def dead_replay(reason: Reason, partner: Optional[str] = None) -> None:
    """Replay every dead letter (of one partner, with --partner), with a progress bar."""
    from gateway.core import outbox

    gw = _gateway()
    with gw.store.reading() as session:
        ids = outbox.dead_letter_ids(session, partner)
    if not ids:
        console.print("no dead letters")
        return
    _replay(ids, reason)


# --- privacy --------------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[Optional[str], typer.Option(help="An exported checkpoint (JSON) to hold the log to")] = None,
) -> None:
    """Walk the hash chain and the checkpoints; name the first broken entry (exit 1)."""
    from pathlib import Path

    from gateway.core import audit_chain

    gw = _gateway()
    extra = [json.loads(Path(checkpoint).read_text())] if checkpoint else None
    with gw.store.reading() as session:
        result = audit_chain.verify(session, extra, trusted=audit_chain.trusted_keys(gw.settings))
    if result.ok:
        console.print(f"audit chain intact: {result.entries} entries, head seq {result.head_seq}, "
                      f"{result.checkpoints_checked} checkpoint(s) checked")
        return
    console.print(f"[red]audit chain BROKEN[/red] at entry seq {result.first_broken_seq}: {result.problem}")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(export: Annotated[Optional[str], typer.Option(help="Also write the checkpoint to this file")] = None) -> None:
    """Sign the current chain head (the server does this daily)."""
    from pathlib import Path

    from gateway.core import audit_chain

    gw = _gateway()
    with gw.store.transaction() as session:
        row = audit_chain.checkpoint(session, gw.settings.audit_signing_key)
        if row is None:
            _fail("the audit log is empty")
        data = audit_chain.export_checkpoint(row)
    if export:
        Path(export).write_text(json.dumps(data, indent=2) + "\n")
    console.print_json(json.dumps(data))


@audit_app.command("export")
def audit_export_cmd(output: str, format: Annotated[str, typer.Option(help="jsonl or fhir")] = "jsonl") -> None:
    """Write the audit trail as JSON lines or FHIR R4 AuditEvent resources."""
    from gateway.core import audit, audit_export

    if format not in ("jsonl", "fhir"):
        _fail("format is jsonl or fhir")
    gw = _gateway()
    with gw.store.transaction() as session:
        audit.record(session, "audit.exported", actor=_actor(), action_code="R", detail=format)
    count = 0
    with gw.store.reading() as session, open(output, "w", encoding="utf-8") as handle:
        for line in audit_export.lines(session, format):
            handle.write(line)
            count += 1
    console.print(f"{count} entries written to {output}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt bodies, evidence and partner secrets under the first key in GATEWAY_ENCRYPTION_KEYS."""
    from gateway.core import retention

    gw = _gateway()
    with Progress(console=console) as progress:
        task = progress.add_task("re-encrypting", total=None)
        count = retention.rotate_keys(gw.store, gw.box, _actor(), lambda n: progress.advance(task, n))
    console.print(f"{count} values re-encrypted; the old key may now be removed")


@retention_app.command("purge")
def retention_purge(days: Optional[int] = None) -> None:
    """Erase bodies of finished exchanges older than GATEWAY_BODY_RETENTION_DAYS (the audit trail stays)."""
    from gateway.core import retention

    gw = _gateway()
    count = retention.purge_bodies(gw.store, days if days is not None else gw.settings.body_retention_days, _actor())
    console.print(f"{count} message bodies erased")


if __name__ == "__main__":  # pragma: no cover
    app()
