"""Load benchmark against the running local stack (`make up`), measuring in the same run:

- the raw ceiling: aio-pika publish-with-confirms and consume-and-ack of persistent messages of
  the size of a real event, on a scratch quorum queue;
- the pipeline: opinions submitted over HTTP by concurrent office clients until each one is
  assigned and its department's webhook delivered; it and the hop chain (tools/hops.py) run
  in alternating rounds (MINYI_BENCH_ROUNDS, 3), each taking its share of the opinions, and
  the ratio pipeline ÷ hop ceiling is the median of the rounds' ratios;
- the same at a fixed rate of half the capacity just measured, for latency below saturation;
- the same pipeline again with a second replica of routing, followup and notification each
  (started by the benchmark on ports 8012-8014, stopped after), for throughput and duplicates.
  MINYI_BENCH_PORT_BASE (8000) moves the benchmark's own processes (replicas, hop chain).

Settings (environment): MINYI_BENCH_OPINIONS (default 1000), MINYI_BENCH_CONCURRENCY (32),
MINYI_BENCH_RATE (opinions/s; set it for the fixed-rate latency mode), MINYI_BENCH_SECONDS (60,
with a rate), MINYI_BENCH_WEBHOOK_PORT (8098), MINYI_BENCH_REPLICAS (2; 1 skips the scaling run),
MINYI_BENCH_HALF_SECONDS (30: without a rate, the pipeline is also run at half the capacity it
just measured, at that fixed rate, for end-to-end latency below saturation)."""

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import SERVICES, Settings, get_settings
from tools import hops
from tools.demo import DEMO_OFFICES, Received, WebhookSink, seed_keys, url

VAR = Path("var")
SCALED = ("routing", "followup", "notification")
# The benchmark's own processes listen from MINYI_BENCH_PORT_BASE (8000) up: the second
# replica of service N on base + 10 + N, tools/hops.py's processes on base + 20 and up.
PORT_BASE = int(os.environ.get("MINYI_BENCH_PORT_BASE", "8000"))
REPLICA_PORT_BASE = PORT_BASE + 10
HOPS_PORT_BASE = PORT_BASE + 20
RAW_ROUNDS = 3
# Rounds of the hop chain and the pipeline, alternating (MINYI_BENCH_ROUNDS).
ROUNDS = int(os.environ.get("MINYI_BENCH_ROUNDS", "3"))
# Phrases the demo directory routes by keyword rule, so no trained model is needed.
TITLES = ("公交站台破损", "工地夜间噪音扰民", "企业拖欠工资", "河道偷排污水", "公交线路调整")


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"MINYI_BENCH_{name}", default))


def _quantiles(values: list[float]) -> dict[str, float]:
    cuts = (
        statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    )
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


# Seconds between two progress lines of one counter when stderr is a log, not a terminal.
PROGRESS_EVERY = 5.0
_progress_shown: dict[str, float] = {}


def progress(label: str, done: int, total: int) -> None:
    """Show how far ``label`` is: on a terminal a bar redrawn in place (at most 5 times a
    second), in a log a line every PROGRESS_EVERY seconds and one at the end."""
    finished = done >= total
    terminal = sys.stderr.isatty()
    now = time.monotonic()
    shown = _progress_shown.get(label)
    if not finished and shown is not None and now - shown < (0.2 if terminal else PROGRESS_EVERY):
        return
    if finished:
        _progress_shown.pop(label, None)
    else:
        _progress_shown[label] = now
    filled = int(30 * min(done, total) / max(total, 1))
    line = f"{label:<10} [{'#' * filled}{'.' * (30 - filled)}] {min(done, total)}/{total}"
    sys.stderr.write(f"\r{line}{chr(10) if finished else ''}" if terminal else f"{line}\n")
    sys.stderr.flush()


def _process_usage(extra: dict[str, int]) -> dict[str, tuple[float, int]]:
    """CPU seconds and RSS bytes of the services, the ``extra`` processes (name → pid) and the
    infrastructure, by name."""
    pids = {"load generator": os.getpid(), **extra}
    for name in (*SERVICES, "ferretdb"):
        pid_file = VAR / "run" / f"{name}.pid"
        if pid_file.exists():
            pids[name] = int(pid_file.read_text().strip())
    # The broker, and the store when another checkout started it (no pid file here).
    by_command = {"beam.smp": "rabbitmq", "ferretdb": "ferretdb"}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # a process that ended since the listing
            command = (proc / "comm").read_text(errors="ignore").strip()
            if proc.name.isdigit() and command in by_command:
                pids.setdefault(by_command[command], int(proc.name))
    usage = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            usage[name] = ((int(fields[11]) + int(fields[12])) / tick, rss)
        except (FileNotFoundError, IndexError):
            continue
    return usage


def _machine_ticks() -> dict[str, int]:
    """The machine's CPU time so far (/proc/stat, all cores) by kind, in clock ticks."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


def _machine_report(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Shares of the machine's CPU time: busy, idle, and stolen by the host from this virtual
    machine (the benchmark is only comparable between runs with little steal)."""
    spent = {kind: after[kind] - before[kind] for kind in after}
    total = sum(spent.values()) or 1
    return {f"{kind}_percent": round(100 * ticks / total, 1) for kind, ticks in spent.items()}


def _usage_report(
    before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]], seconds: float
) -> dict[str, dict[str, float]]:
    return {
        name: {
            "cpu_percent": round(100 * (after[name][0] - before[name][0]) / seconds, 1),
            "rss_mb": round(after[name][1] / 2**20, 1),
        }
        for name in after
        if name in before
    }


StoreTotals = dict[tuple[str, str, str], list[float]]


async def _store_totals(http: httpx.AsyncClient, processes: list[tuple[str, str]]) -> StoreTotals:
    """Per (service, command, collection): store round trips and their seconds so far, read from
    the /metrics of every (service, base URL) process and added up by service."""
    totals: StoreTotals = {}
    for service, base in processes:
        text = (await http.get(f"{base}/metrics")).text
        for family in text_string_to_metric_families(text):
            if family.name != "minyi_store_command_seconds":
                continue
            for sample in family.samples:
                key = (service, sample.labels["command"], sample.labels["collection"])
                if sample.name.endswith("_count"):
                    totals.setdefault(key, [0.0, 0.0])[0] += sample.value
                elif sample.name.endswith("_sum"):
                    totals.setdefault(key, [0.0, 0.0])[1] += sample.value
    return totals


def _store_profile(before: StoreTotals, after: StoreTotals, opinions: int) -> dict[str, Any]:
    """Store round trips and store time per opinion, by service, the costliest first."""
    profile: dict[str, Any] = {}
    for (service, command, collection), (count, seconds) in after.items():
        was_count, was_seconds = before.get((service, command, collection), [0.0, 0.0])
        calls = (count - was_count) / opinions
        if calls <= 0:
            continue
        entry = profile.setdefault(service, {"round_trips": 0.0, "store_ms": 0.0, "commands": []})
        ms = 1000 * (seconds - was_seconds) / opinions
        entry["round_trips"] += calls
        entry["store_ms"] += ms
        entry["commands"].append(
            {
                "command": f"{command} {collection}",
                "per_opinion": round(calls, 2),
                "ms": round(ms, 2),
            }
        )
    for entry in profile.values():
        entry["round_trips"] = round(entry["round_trips"], 1)
        entry["store_ms"] = round(entry["store_ms"], 1)
        entry["commands"].sort(key=lambda c: -c["ms"])
    return profile


async def raw_ceiling(
    settings: Settings, count: int, size: int, rounds: int = RAW_ROUNDS
) -> dict[str, Any]:
    """Persistent messages through a scratch quorum queue with confirms and acks: ``rounds``
    rounds of ``count`` messages, reported by their median (one round alone varies by ~15 %)."""
    broker_url = hops.broker_url(settings)
    name = f"minyi.bench.scratch.{uuid.uuid4().hex[:8]}"
    body = b"x" * size
    rates: list[float] = []
    publisher = await aio_pika.connect(broker_url)
    consumer = await aio_pika.connect(broker_url)
    async with publisher, consumer:
        pub_channel = await publisher.channel(publisher_confirms=True)
        queue = await pub_channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        sub_channel = await consumer.channel()
        await sub_channel.set_qos(prefetch_count=200)
        consumed = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen % count == 0:
                consumed.set()

        sub_queue = await sub_channel.get_queue(name)
        await sub_queue.consume(on_message)
        window = 200  # confirms outstanding at once
        for round_no in range(rounds):
            consumed.clear()
            started = time.perf_counter()
            for first in range(0, count, window):
                await asyncio.gather(
                    *(
                        pub_channel.default_exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=name,
                        )
                        for _ in range(min(window, count - first))
                    )
                )
                progress(f"raw {round_no + 1}/{rounds}", first + window, count)
            await consumed.wait()
            rates.append(count / (time.perf_counter() - started))
        await queue.delete(if_unused=False, if_empty=False)
    return {
        "messages": count,
        "bytes": size,
        "rounds_messages_per_s": [round(r, 1) for r in rates],
        "messages_per_s": round(statistics.median(rates), 1),
    }


def bench_opinion(run: str, i: int) -> dict[str, Any]:
    """A plainly worded opinion; each in a street of its own so none is linked as 附议."""
    topic = TITLES[i % len(TITLES)]
    return {
        "title": f"{topic} {i}",
        "content": f"{topic}，影响居民生活，希望有关部门尽快处理。编号{i}",
        "channel": "网络",
        "submitter": {"kind": "群众", "name": "测试"},
        "location": {"district": "示范区", "street": f"测试街道{run}-{i}"},
    }


async def subscribe_departments(
    http: httpx.AsyncClient, keys: dict[str, str], sink: WebhookSink
) -> None:
    """Every demo department subscribes the sink to its assignments."""
    for label, key in keys.items():
        if label.startswith("department:"):
            await sink.subscribe(http, key, ["opinion.assigned"])


@contextlib.asynccontextmanager
async def _running(
    commands: dict[str, tuple[list[str], str]],
    env: dict[str, dict[str, str]] | None = None,
    ready_within: float = 60,
) -> AsyncIterator[dict[str, int]]:
    """Background processes, name → (``python -m`` arguments, readiness URL), each logging to
    var/log/<name>.log, with this process's environment and ``env[name]`` over it; ready before
    it yields their pids by name; stopped with SIGTERM (drained) afterwards."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (arguments, _) in commands.items():
            processes[name] = _spawn(arguments, name, (env or {}).get(name, {}))
        async with httpx.AsyncClient(timeout=2) as http:
            for name, process in processes.items():
                await _wait_ready(http, commands[name][1], process, name, ready_within)
        yield {name: process.pid for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            await asyncio.to_thread(process.wait, 30)


def _spawn(arguments: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    (VAR / "log").mkdir(parents=True, exist_ok=True)
    with (VAR / "log" / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


@contextlib.asynccontextmanager
async def extra_replicas(services: tuple[str, ...]) -> AsyncIterator[dict[str, int]]:
    """A second process of each service (logs var/log/<service>-2.log), ready before it yields
    their pids by service; stopped with SIGTERM (drained) afterwards."""
    commands = {
        f"{service}-2": (
            ["tools.cli", "serve", service, "--port", str(_replica_port(service))],
            f"{_replica_url(service)}/ready",
        )
        for service in services
    }
    async with _running(commands) as pids:
        yield {service: pids[f"{service}-2"] for service in services}


def _replica_port(service: str) -> int:
    return REPLICA_PORT_BASE + SERVICES.index(service) + 1


def _replica_url(service: str) -> str:
    return f"http://127.0.0.1:{_replica_port(service)}"


Submitted = dict[str, tuple[float, float]]  # opinion id → (sent, accepted), time.time()


async def _drive(
    http: httpx.AsyncClient,
    sink: WebhookSink,
    submit_url: str,
    keys: list[str],
    count: int,
    concurrency: int,
    rate: float | None,
) -> tuple[Submitted, dict[str, Received], list[str], float]:
    """Submit ``count`` opinions with ``concurrency`` clients (or at ``rate`` per second), taking
    the office ``keys`` in turn, and wait until each one's assignment reaches the sink. Returns
    what was accepted, what arrived (by opinion id), the rejections and the start time."""
    run = uuid.uuid4().hex[:6]
    submitted: Submitted = {}
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def submit(i: int) -> None:
        async with gate:
            # At a fixed rate, latency counts from when the opinion was due to be sent, so that
            # waiting for a free office client is not left out (coordinated omission).
            sent = started + i / rate if rate else time.time()
            try:
                response = await http.post(
                    submit_url,
                    json=bench_opinion(run, i),
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                )
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            if response.status_code != 201:
                failures.append(f"{response.status_code} {response.text[:200]}")
                return
            submitted[response.json()["id"]] = (sent, time.time())
            progress("submitted", len(submitted), count)

    started = time.time()
    tasks = []
    for i in range(count):
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.time()))
        tasks.append(asyncio.create_task(submit(i)))
    await asyncio.gather(*tasks)

    def delivered() -> dict[str, Received]:
        return {
            r.event["subject"]: r
            for r in sink.of_type("opinion.assigned")
            if r.event["subject"] in submitted
        }

    deadline = time.time() + 120 + count / 20
    while len(arrived := delivered()) < len(submitted) and time.time() < deadline:
        progress("delivered", len(arrived), len(submitted))
        await asyncio.sleep(0.5)
    progress("delivered", len(arrived), len(submitted))
    return submitted, arrived, failures, started


def _report(
    sink: WebhookSink,
    submitted: Submitted,
    arrived: dict[str, Received],
    failures: list[str],
    elapsed: float,
    count: int,
    concurrency: int,
    rate: float | None,
) -> dict[str, Any]:
    end_to_end, accept, routed, delivery = [], [], [], []
    for opinion_id, hook in arrived.items():
        sent, accepted = submitted[opinion_id]
        assigned_at = _epoch(hook.event["time"])
        end_to_end.append(hook.at - sent)
        accept.append(accepted - sent)
        routed.append(assigned_at - _epoch(hook.event["data"]["received_at"]))
        delivery.append(hook.at - assigned_at)
    posts = [r for r in sink.of_type("opinion.assigned") if r.event["subject"] in submitted]
    distinct = {r.delivery_id: r.event["subject"] for r in posts}
    per_opinion = Counter(distinct.values())
    return {
        "opinions": count,
        "accepted": len(submitted),
        "rejected": len(failures),
        "rejections": failures[:5],
        "delivered": len(arrived),
        "lost": len(submitted) - len(arrived),
        # Two deliveries (distinct ids) of one opinion's assignment: a real duplicate.
        "duplicate_notifications": sum(n - 1 for n in per_opinion.values()),
        # The same delivery id posted again (a crash after sending); receivers drop these.
        "same_delivery_resent": len(posts) - len(distinct),
        "concurrency": concurrency,
        "target_rate_per_s": rate,
        "seconds": round(elapsed, 2),
        "opinions_per_s": round(len(arrived) / elapsed, 1) if elapsed else 0.0,
        "end_to_end": _quantiles(end_to_end) if end_to_end else {},
        "stages": {
            "http_accept": _quantiles(accept) if accept else {},
            "received_to_assigned": _quantiles(routed) if routed else {},
            "assigned_to_webhook": _quantiles(delivery) if delivery else {},
        },
    }


def _elapsed(arrived: dict[str, Received], started: float) -> float:
    return max(r.at for r in arrived.values()) - started if arrived else 0.0


async def pipeline(
    settings: Settings,
    count: int,
    concurrency: int,
    rate: float | None,
    port: int,
    replicas: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Submit opinions over HTTP; wait until each one's department webhook is delivered.
    ``replicas``: the second service processes running (service → pid), measured too."""
    replicas = replicas or {}
    processes = [(s, url(s)) for s in SERVICES] + [(s, _replica_url(s)) for s in replicas]
    keys = await seed_keys(settings, {})
    offices = [keys[f"office:{code}"] for code in DEMO_OFFICES]
    sink = WebhookSink(port)
    limits = httpx.Limits(max_connections=concurrency)
    async with sink.running(), httpx.AsyncClient(timeout=60, limits=limits) as http:
        await subscribe_departments(http, keys, sink)
        store_before = await _store_totals(http, processes)
        extra = {f"{service}-2": pid for service, pid in replicas.items()}
        before, machine_before = _process_usage(extra), _machine_ticks()
        submitted, arrived, failures, started = await _drive(
            http, sink, f"{url('intake')}/opinions", offices, count, concurrency, rate
        )
        await sink.unsubscribe(http)
        elapsed = _elapsed(arrived, started)
        after, machine_after = _process_usage(extra), _machine_ticks()
        store_after = await _store_totals(http, processes)
    result = _report(sink, submitted, arrived, failures, elapsed, count, concurrency, rate)
    result["machine"] = _machine_report(machine_before, machine_after)
    result["processes"] = _usage_report(before, after, elapsed or 1.0)
    profile = _store_profile(store_before, store_after, max(len(arrived), 1))
    result["store_round_trips_per_opinion"] = round(
        sum(e["round_trips"] for e in profile.values()), 1
    )
    result["store_per_opinion"] = profile
    return result


async def hop_ceiling(
    settings: Settings,
    count: int,
    concurrency: int,
    rate: float | None,
    port: int,
    port_base: int = HOPS_PORT_BASE,
) -> dict[str, Any]:
    """The same load through tools/hops.py: the pipeline's processes and hops, no work.
    Its processes listen on ``port_base`` and up."""
    name = f"minyi.bench.hops.{uuid.uuid4().hex[:8]}"
    sink = WebhookSink(port)
    ports = {role: port_base + i for i, role in enumerate(hops.ROLES)}
    commands = {
        f"hops-{role}": (
            ["tools.hops", role, name, str(ports[role]), sink.url],
            f"http://127.0.0.1:{ports[role]}/health",
        )
        for role in hops.ROLES
    }
    limits = httpx.Limits(max_connections=concurrency)
    try:
        async with (
            sink.running(),
            httpx.AsyncClient(timeout=60, limits=limits) as http,
            _running(commands) as extra,
        ):
            before, machine_before = _process_usage(extra), _machine_ticks()
            submitted, arrived, failures, started = await _drive(
                http,
                sink,
                f"http://127.0.0.1:{ports['accept']}/opinions",
                ["-"],
                count,
                concurrency,
                rate,
            )
            elapsed = _elapsed(arrived, started)
            after, machine_after = _process_usage(extra), _machine_ticks()
    finally:
        await _delete_scratch(settings, name)
    result = _report(sink, submitted, arrived, failures, elapsed, count, concurrency, rate)
    result["machine"] = _machine_report(machine_before, machine_after)
    result["processes"] = {
        k: v
        for k, v in _usage_report(before, after, elapsed or 1.0).items()
        if k.startswith("hops-") or k in ("rabbitmq", "load generator")
    }
    return result


async def _delete_scratch(settings: Settings, name: str) -> None:
    connection = await aio_pika.connect(hops.broker_url(settings))
    async with connection:
        channel = await connection.channel()
        for role in hops.ROLES[1:]:
            await channel.queue_delete(f"{name}.{role}")
        await channel.exchange_delete(name)


async def _wait_ready(
    http: httpx.AsyncClient,
    ready_url: str,
    process: subprocess.Popen[bytes],
    name: str,
    within: float = 60,
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see var/log/{name}.log")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(ready_url)).status_code == 200:
                return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{name} not ready after {within:.0f} s")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run(output: Path) -> dict[str, Any]:
    """`minyi bench pipeline`: raw ceiling and pipeline in one run, and their ratio."""
    settings = get_settings()
    rate = _env("RATE", 0) or None
    count = int(_env("SECONDS", 60) * rate) if rate else int(_env("OPINIONS", 1000))
    concurrency = int(_env("CONCURRENCY", 32))
    port = int(_env("WEBHOOK_PORT", 8098))

    scaled = int(_env("REPLICAS", 2)) > 1

    def ratio(a: float, b: float) -> float:
        return round(a / b, 4) if b else 0.0

    async def measure() -> dict[str, Any]:
        raw = await raw_ceiling(settings, max(count, 5000), 1500)
        # The hop chain and the pipeline in alternating rounds: what other work on the machine
        # takes then weighs on both sides of each round's ratio alike.
        rounds: list[dict[str, Any]] = []
        for n in range(ROUNDS):
            share = count // ROUNDS + (1 if n < count % ROUNDS else 0)
            bare = await hop_ceiling(settings, share, concurrency, rate, port)
            flow = await pipeline(settings, share, concurrency, rate, port)
            rounds.append({"hop_ceiling": bare, "pipeline": flow})
        ratios = [
            ratio(r["pipeline"]["opinions_per_s"], r["hop_ceiling"]["opinions_per_s"])
            for r in rounds
        ]
        middle = rounds[ratios.index(statistics.median_low(ratios))]
        bare, flow = middle["hop_ceiling"], middle["pipeline"]
        result = {
            "raw_ceiling": raw,
            # The round of the median ratio, in full; every round's figures below.
            "hop_ceiling": bare,
            "pipeline": flow,
            "rounds": [
                {
                    "hop_ceiling_per_s": r["hop_ceiling"]["opinions_per_s"],
                    "pipeline_per_s": r["pipeline"]["opinions_per_s"],
                    "ratio_pipeline_to_hops": q,
                    "machine_busy_percent": r["pipeline"]["machine"]["busy_percent"],
                    "store_round_trips_per_opinion": r["pipeline"]["store_round_trips_per_opinion"],
                }
                for r, q in zip(rounds, ratios, strict=True)
            ],
            "ratio_pipeline_to_raw": ratio(flow["opinions_per_s"], raw["messages_per_s"]),
            "ratio_pipeline_to_hops": statistics.median_low(ratios),
            "ratio_hops_to_raw": ratio(bare["opinions_per_s"], raw["messages_per_s"]),
        }
        if not rate and flow["opinions_per_s"]:
            # Latency below saturation: half the capacity just measured, at a fixed rate.
            half = round(flow["opinions_per_s"] / 2, 1)
            seconds = _env("HALF_SECONDS", 30)
            calm = await pipeline(settings, int(half * seconds), concurrency, half, port)
            result["half_capacity"] = calm
        if scaled:
            async with extra_replicas(SCALED) as pids:
                two = await pipeline(settings, count, concurrency, rate, port, pids)
            result["two_replicas"] = {
                "replicated": list(SCALED),
                **two,
                "ratio_to_one_replica": ratio(two["opinions_per_s"], flow["opinions_per_s"]),
            }
        return result

    # The load generator shares the machine: the same fast event loop as the services.
    return uvloop.run(measure())
