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
from .classifier import DEFAULT_LABEL_COLUMN, LabelledText, TrainingDataError, read_labelled
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


LabelColumn = Annotated[
    str, typer.Option(help="The column holding the label 类别列 (other columns are ignored)")
]
FileArgument = Annotated[
    Path, typer.Argument(help="CSV or XLSX with content, the label column and optionally title")
]


def _read(file: Path, label_column: str, for_training: bool) -> list[LabelledText]:
    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file 文件不存在")
    try:
        read = read_labelled(
            file.read_bytes(), file.name, label_column=label_column, for_training=for_training
        )
    except TrainingDataError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo("The active model is unchanged 当前模型未变.", err=True)
        raise typer.Exit(2) from None
    if read.ignored_columns:
        typer.echo(f"ignored columns 未使用的列: {', '.join(read.ignored_columns)}")
    return read.rows


def write_labelled_csv(path: Path, rows: list[LabelledText], label_column: str) -> None:
    """Write rows in the training file layout (title, content and the label column)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "content", label_column])
        writer.writerows([r.title, r.content, r.category] for r in rows)


@app.command()
def train(
    file: FileArgument,
    label_column: LabelColumn = DEFAULT_LABEL_COLUMN,
    hold_out: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Fraction set aside for evaluation")
    ] = 0.0,
    hold_out_file: Annotated[
        Path, typer.Option(help="Where the set-aside rows are written")
    ] = Path("var/routing/held-out.csv"),
    seed: Annotated[int, typer.Option(help="Seed of the hold-out split")] = 42,
    activate: Annotated[bool, typer.Option(help="Make the new version active")] = True,
) -> None:
    """Train a model version on FILE (plus staff corrections) and activate it; columns other
    than title, content and the label column are ignored (listed once)."""
    rows = _read(file, label_column, for_training=True)
    if hold_out > 0:
        kept, held = train_test_split(
            rows, test_size=hold_out, random_state=seed, stratify=[r.category for r in rows]
        )
        write_labelled_csv(hold_out_file, held, label_column)
        typer.echo(f"set aside {len(held)} rows in {hold_out_file}; training on {len(kept)}")
        rows = kept
    result = _with_ports(lambda ports: handlers.train_model(rows, "cli", ports, activate))
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("evaluate")
def evaluate_command(
    file: FileArgument,
    label_column: LabelColumn = DEFAULT_LABEL_COLUMN,
    version: Annotated[str | None, typer.Option(help="A stored version; default: active")] = None,
) -> None:
    """Score a model on labelled rows it has not seen: accuracy, macro-F1, per class, confusion,
    and the baseline's macro-F1 trained on the model's training file and scored on FILE."""
    rows = _read(file, label_column, for_training=False)
    try:
        name, report, baseline = _with_ports(
            lambda ports: handlers.evaluate_version(rows, version, ports)
        )
    except RoutingError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model 模型: {name}\n{report.render()}")
    if baseline is None:
        typer.echo("\nbaseline 基线: the model's training file is not stored 训练数据未保存")
    else:
        typer.echo(
            "\nbaseline 基线 (TF-IDF char 1-3-grams + class-balanced LinearSVC, same training "
            f"rows): macro-F1 {baseline:.4f}, margin 差值 {report.macro_f1 - baseline:+.4f}"
        )


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
