"""``minyi routing …`` — train and evaluate the classifier, list model versions."""

import asyncio
import csv
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sklearn.model_selection import train_test_split

from shared.messaging import EventBus
from shared.settings import get_settings
from shared.store import mongo_client

from . import handlers
from .classifier import LabelledText, TrainingDataError, evaluate, read_labelled_csv
from .handlers import RoutingError, RoutingPorts
from .main import RoutingSettings, routing_ports

app = typer.Typer(help="Routing: train and evaluate the classifier.", no_args_is_help=True)

T = TypeVar("T")


def _with_ports(use: Callable[[RoutingPorts], Awaitable[T]]) -> T:
    async def run() -> T:
        settings = get_settings()
        mongo = mongo_client(settings)
        try:
            # The bus is never connected: training and evaluating publish nothing.
            bus = EventBus("routing", settings)
            db = mongo[settings.database("routing")]
            return await use(routing_ports(db, bus, RoutingSettings().model_refresh_seconds))
        finally:
            await mongo.close()

    return asyncio.run(run())


def _read(file: Path, for_training: bool) -> list[LabelledText]:
    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file 文件不存在")
    try:
        return read_labelled_csv(file.read_bytes(), for_training=for_training)
    except TrainingDataError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo("The active model is unchanged 当前模型未变.", err=True)
        raise typer.Exit(2) from None


def write_labelled_csv(path: Path, rows: list[LabelledText]) -> None:
    """Write rows in the training file layout (title, content, category)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "content", "category"])
        writer.writerows([r.title, r.content, r.category] for r in rows)


@app.command()
def train(
    file: Annotated[Path, typer.Argument(help="CSV with columns title, content, category")],
    hold_out: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Fraction set aside for evaluation")
    ] = 0.0,
    hold_out_file: Annotated[
        Path, typer.Option(help="Where the set-aside rows are written")
    ] = Path("var/routing/held-out.csv"),
    seed: Annotated[int, typer.Option(help="Seed of the hold-out split")] = 42,
    activate: Annotated[bool, typer.Option(help="Make the new version active")] = True,
) -> None:
    """Train a model version on FILE (plus staff corrections) and activate it."""
    rows = _read(file, for_training=True)
    if hold_out > 0:
        kept, held = train_test_split(
            rows, test_size=hold_out, random_state=seed, stratify=[r.category for r in rows]
        )
        write_labelled_csv(hold_out_file, held)
        typer.echo(f"set aside {len(held)} rows in {hold_out_file}; training on {len(kept)}")
        rows = kept
    result = _with_ports(lambda ports: handlers.train_model(rows, "cli", ports, activate))
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("evaluate")
def evaluate_command(
    file: Annotated[Path, typer.Argument(help="CSV with columns title, content, category")],
    version: Annotated[str | None, typer.Option(help="A stored version; default: active")] = None,
) -> None:
    """Score a model on labelled rows it has not seen: accuracy, macro-F1, per class, confusion."""
    rows = _read(file, for_training=False)

    async def run(ports: RoutingPorts) -> Any:
        name = version or await ports.models.active_version()
        if name is None:
            raise RoutingError(409, "no model is active yet 尚无模型: run `minyi routing train`")
        try:
            classifier = await ports.models.load(name)
        except LookupError as exc:
            raise RoutingError(404, str(exc)) from None
        return name, await asyncio.to_thread(evaluate, classifier, rows)

    try:
        name, report = _with_ports(run)
    except RoutingError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model 模型: {name}\n{report.render()}")


@app.command()
def models() -> None:
    """List the stored model versions; the active one is marked with *."""

    async def run(ports: RoutingPorts) -> tuple[str | None, list[dict[str, Any]]]:
        return await ports.models.active_version(), await ports.models.versions()

    active, versions = _with_ports(run)
    for info in versions:
        mark = "*" if info["_id"] == active else " "
        typer.echo(
            f"{mark} {info['_id']:>5}  {info['created_at']:%Y-%m-%d %H:%M}  rows={info['rows']}"
            f"  corrections={info['examples_used']}  labels={len(info['labels'])}"
            f"  source={info['source']}"
        )
