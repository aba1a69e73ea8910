"""``minyi`` — the operators' command line."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from pymongo.asynchronous.database import AsyncDatabase

from shared import asyncapi, auth, broker_admin
from shared.observability import configure_logging
from shared.settings import DEFAULT_PORTS, SERVICES, InsecureSettings, Settings, get_settings
from shared.store import Document, mongo_client

T = TypeVar("T")

app = typer.Typer(help="民意直通车 Minyi — operators' tools.", no_args_is_help=True)
broker = typer.Typer(help="RabbitMQ set-up.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
dlq = typer.Typer(help="Parking lot (dead letters): inspect and replay.", no_args_is_help=True)
docs = typer.Typer(help="Generated documents.", no_args_is_help=True)
store = typer.Typer(help="Document store set-up.", no_args_is_help=True)
for sub, name in (
    (broker, "broker"),
    (keys, "keys"),
    (dlq, "dlq"),
    (docs, "docs"),
    (store, "store"),
):
    app.add_typer(sub, name=name)
departments = typer.Typer(help="Departments' own AMQP subscriptions.", no_args_is_help=True)
app.add_typer(departments, name="departments")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def routing(ctx: typer.Context) -> None:
    """Routing: train and evaluate the classifier (minyi routing --help)."""
    # Imported only here: the classifier's libraries (scikit-learn, SciPy) would cost every
    # other command ~120 MB and seconds at start, the services run by `serve` included.
    from services.routing import cli as routing_cli

    routing_cli.app(ctx.args, prog_name="minyi routing")


topics = typer.Typer(help="专题 hot topics.", no_args_is_help=True)
app.add_typer(topics, name="topics")

ServiceName = Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")]
# What `serve` can run: the four services and the console in front of them.
SERVABLE = (*SERVICES, "console")


def _check_service(service: str, known: tuple[str, ...] = SERVICES) -> None:
    if service not in known:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(known)}")


def _check_secrets(purpose: str) -> None:
    """Exit 2 with one line on stderr if a secret is missing, short or known."""
    try:
        get_settings().check_secrets(purpose)
    except InsecureSettings as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    service: ServiceName,
    host: str = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default: 8000 console, 8001-8004")] = None,
) -> None:
    """Run one service (HTTP API and its event consumers), or the console, in this process."""
    _check_service(service, SERVABLE)
    _check_secrets(service)
    configure_logging()
    uvicorn.run(
        f"services.{service}.main:create_app",
        factory=True,
        host=host,
        port=port or DEFAULT_PORTS[service],
        log_config=None,
        timeout_graceful_shutdown=30,
        # Longer than clients keep idle connections (httpx: 5 s, uvicorn's own default): with
        # equal timeouts a client may reuse a connection just as the server closes it, and a
        # POST then fails with a read error (seen in the e2e tests).
        timeout_keep_alive=75,
    )


@broker.command("setup")
def broker_setup() -> None:
    """Create the vhost and the per-service RabbitMQ users (idempotent)."""
    _check_secrets("broker-setup")
    for line in broker_admin.setup(get_settings()):
        typer.echo(f"ok  {line}")


# Secondary indexes of the queries that are not by ``_id``: (service, collection, field).
# FerretDB 1.24 answers only ``_id`` lookups from an index; MongoDB uses all of these.
INDEXES = (
    ("followup", "timers", "fire_at"),
    ("followup", "timer_agenda", "fire_at"),
    ("intake", "opinions", "received_at"),
    ("intake", "opinions", "office_id"),
    *((s, "outbox_pending", "collection") for s in SERVICES),
)


async def create_indexes(settings: Settings) -> list[str]:
    """Create the INDEXES (idempotent); returns what was done."""
    mongo = mongo_client(settings)
    try:
        done = []
        for service, collection, field in INDEXES:
            await mongo[settings.database(service)][collection].create_index(field)
            done.append(f"{settings.database(service)}.{collection} {field}")
        return done
    finally:
        await mongo.close()


@store.command("indexes")
def store_indexes() -> None:
    """Create the services' secondary indexes (idempotent)."""
    for line in asyncio.run(create_indexes(get_settings())):
        typer.echo(f"ok  {line}")


@keys.command("create")
def create_key(
    role: Annotated[auth.Role, typer.Option(help="office, department, supervisor, editor, admin")],
    subject: Annotated[str, typer.Option(help="Office or department code, or staff name")],
    name: Annotated[str, typer.Option(help="Display name, e.g. 区政协办公室")],
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""

    typer.echo(_with_auth_db(lambda db: auth.create_key(db, role, subject, name)))


def _with_auth_db(use: Callable[[AsyncDatabase[Document]], Awaitable[T]]) -> T:
    """Run ``use(auth database)`` against the configured store."""

    async def run() -> T:
        settings = get_settings()
        mongo = mongo_client(settings)
        try:
            return await use(mongo[settings.database(auth.AUTH_DB)])
        finally:
            await mongo.close()

    return asyncio.run(run())


@keys.command("list")
def list_keys() -> None:
    """List API keys: id, role, subject, name, created, revoked (never the keys themselves)."""
    for doc in _with_auth_db(auth.list_keys):
        state = f"revoked {doc['revoked_at']:%Y-%m-%d %H:%M}" if doc.get("revoked") else "active"
        typer.echo(
            f"{doc['_id']}  {doc['role']:<10} {doc['subject']:<24} {doc['name']}  "
            f"created {doc['created_at']:%Y-%m-%d %H:%M}  {state}"
        )


@keys.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="The key (mny_…) or its id from 'minyi keys list'")],
) -> None:
    """Revoke an API key (processes that checked it recently accept it for up to 30 s more)."""
    try:
        doc = _with_auth_db(lambda db: auth.revoke_key(db, key))
    except LookupError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"revoked {doc['_id']} ({doc['role']} {doc['subject']}, {doc['name']})")


@departments.command("provision")
def departments_provision(
    code: Annotated[str, typer.Argument(help="Department code, e.g. housing")],
    password: Annotated[
        str | None, typer.Option(help="Set this password (default: generate for a new user)")
    ] = None,
) -> None:
    """Give a department its own RabbitMQ user and queue of its events (read-only)."""
    try:
        made = broker_admin.provision_department(get_settings(), code, password)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"ok  user {made.user}, queue {made.queue} bound to {made.binding}")
    if made.password is None:
        typer.echo("    password unchanged (give --password to set a new one)")
    else:
        typer.echo(f"    password (shown once): {made.password}")
    typer.echo(f"    connect: {made.amqp_url}")


@departments.command("revoke")
def departments_revoke(
    code: Annotated[str, typer.Argument(help="Department code, e.g. housing")],
) -> None:
    """Take a department's RabbitMQ user and queue away."""
    broker_admin.revoke_department(get_settings(), code)
    typer.echo(f"ok  revoked {broker_admin.department_user(code)}")


@dlq.command("list")
def dlq_list(service: ServiceName, limit: int = 20) -> None:
    """Show parked messages of a service with the reason each was parked."""
    _check_service(service)
    found = asyncio.run(broker_admin.parked(service, get_settings(), limit))
    for item in found:
        typer.echo(json.dumps(item, ensure_ascii=False))
    typer.echo(f"{len(found)} parked message(s) shown for {service}", err=True)


@dlq.command("replay")
def dlq_replay(service: ServiceName, limit: int = 1000) -> None:
    """Move parked messages back to the service's work queue."""
    _check_service(service)
    moved = asyncio.run(broker_admin.replay(service, get_settings(), limit))
    typer.echo(f"replayed {moved} message(s) to {service}")


@docs.command("asyncapi")
def docs_asyncapi(output: Annotated[Path | None, typer.Option()] = None) -> None:
    """Write the AsyncAPI document generated from the event models."""
    text = json.dumps(asyncapi.document(), ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"wrote {output}")


# Benchmark suites: name → "module:function"; the function takes the output directory and
# returns a summary dict (also written there as <name>.json).
BENCHMARKS: dict[str, str] = {
    "pipeline": "tools.loadtest:run",
    "notification": "tools.bench.notification:run",
    "followup": "tools.bench.followup:run",
    "intake-duplicates": "tools.bench.intake:run",
    "intake-memory": "tools.bench.intake:memory",
    "routing": "tools.bench.routing:run",
}


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="A suite name, or 'all'")] = "all",
    output: Path = Path("var/bench"),
) -> None:
    """Run benchmarks and print their results (JSON files in OUTPUT)."""
    import importlib

    names = list(BENCHMARKS) if suite == "all" else [suite]
    for name in names:
        if name not in BENCHMARKS:
            raise typer.BadParameter(f"unknown suite {name!r}; one of: {', '.join(BENCHMARKS)}")
        module, function = BENCHMARKS[name].split(":")
        output.mkdir(parents=True, exist_ok=True)
        result = getattr(importlib.import_module(module), function)(output)
        (output / f"{name}.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
        typer.echo(json.dumps({name: result}, ensure_ascii=False, indent=2))


@app.command()
def chaos() -> None:
    """Chaos drill against the running stack (see tools/chaos.py); exits 1 if it fails."""
    from tools.chaos import run

    report = run()
    for line in report.pop("actions"):
        typer.echo(f"  {line}")
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    typer.echo("chaos drill: " + ("PASSED" if report["passed"] else "FAILED"))
    if not report["passed"]:
        raise typer.Exit(1)


@app.command("drill-cluster")
def drill_cluster() -> None:
    """Broker-node failure drill on a 3-node RabbitMQ cluster of its own (services/
    cluster_drill.py); exits 1 if it fails."""
    from tools.cluster_drill import run

    report = run()
    for line in report.pop("actions"):
        typer.echo(f"  {line}")
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    typer.echo(f"stopped node: {report['stopped_node']}")
    typer.echo("cluster drill: " + ("PASSED" if report["passed"] else "FAILED"))
    if not report["passed"]:
        raise typer.Exit(1)


@app.command()
def seed(
    keys_file: Path = Path("var/demo-keys.json"),
    people_file: Path = Path("var/demo-people.json"),
) -> None:
    """Create demo API keys for the demo offices, departments and staff (kept in KEYS_FILE),
    and the demo units with one console login per role (passwords kept in PEOPLE_FILE)."""
    from tools.demo import seed_keys, seed_people

    for path, make, what in (
        (keys_file, seed_keys, "demo keys"),
        (people_file, seed_people, "demo console logins"),
    ):
        known = json.loads(path.read_text()) if path.exists() else {}
        created = asyncio.run(make(get_settings(), known))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created, indent=2, ensure_ascii=False))
        path.chmod(0o600)
        typer.echo(f"{len(created)} {what} in {path}")


@app.command()
def demo(
    keys_file: Path = Path("var/demo-keys.json"),
    people_file: Path = Path("var/demo-people.json"),
    webhook_port: int = 8099,
) -> None:
    """Walk one opinion through the running system, print its timeline and the console's
    demo logins."""
    from tools.demo import DEMO_PEOPLE, run_demo

    if not keys_file.exists():
        raise typer.BadParameter(f"{keys_file} is missing: run `minyi seed` first")
    asyncio.run(run_demo(json.loads(keys_file.read_text()), webhook_port))
    if people_file.exists():
        typer.echo(f"\n控制台 Console: http://127.0.0.1:{DEFAULT_PORTS['console']}  (demo logins)")
        people = json.loads(people_file.read_text())
        for login, _, unit, role in DEMO_PEOPLE:
            typer.echo(f"  {role.value:<11} {unit:<14} login {login:<11} password {people[login]}")


@topics.command("detect")
def topics_detect(
    file: Annotated[Path, typer.Argument(help="CSV: id, title, content, time[, likes]")],
    window: Annotated[int, typer.Option(min=1, max=3660, help="Sliding window in days")] = 30,
) -> None:
    """Group a CSV of opinions into 专题 the way routing does as they arrive; print them as
    JSON, hottest first."""
    import csv
    from datetime import timedelta

    from services.routing.topics.domain import OpinionFileError, detect, entries_from_csv

    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file 文件不存在")
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            entries = entries_from_csv(reader, list(reader.fieldnames or []))
    except (OpinionFileError, UnicodeDecodeError, csv.Error) as exc:
        problems = exc.problems if isinstance(exc, OpinionFileError) else [str(exc)]
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    found = detect(entries, timedelta(days=window))
    typer.echo(
        json.dumps(
            {
                "window_days": window,
                "opinions": len(entries),
                "topics": [
                    {
                        "id": t.id,
                        "label": t.summary.label,
                        "heat": t.summary.heat.value,
                        "keywords": t.summary.keywords,
                        "first_seen": t.summary.first_seen.isoformat(),
                        "last_seen": t.summary.last_seen.isoformat(),
                        "ids": t.members,
                    }
                    for t in found
                ],
            },
            ensure_ascii=False,
            indent=1,
        )
    )


if __name__ == "__main__":
    app()
