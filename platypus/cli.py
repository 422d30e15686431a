"""The ``platypus`` command."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path

import click

from platypus import __version__
from platypus.clitools import (
    echo_json,
    examples,
    exit_on_error,
    json_option,
    progressbar,
    project_option,
)

_PROJECT = project_option
_errors = exit_on_error
_JSON = json_option


@examples(
    "platypus run --demo --once",
    "platypus flows lint && platypus flows test",
    "platypus dlq list --json",
)
@click.group()
@click.version_option(__version__, prog_name="platypus")
def main() -> None:
    """Platypus: business events in, checked against their schema, routed by YAML flows."""


@examples(
    "platypus run                      # flows/ and platypus.yaml of this folder",
    "platypus run --demo --once        # the sample flows against a stand-in vendor",
    "platypus run --port 0 --log-json  # a free port, JSON logs",
)
@main.command()
@_PROJECT
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Event log folder (default: data_dir of platypus.yaml; a fresh one with --demo).",
)
@click.option("--host", help="Interface for the ingress (default from platypus.yaml).")
@click.option("--port", type=int, help="Port for the ingress; 0 picks a free one.")
@click.option(
    "--demo",
    is_flag=True,
    help="Start a stand-in vendor and push the project's sample events "
    "(samples/demo/ from the repository root).",
)
@click.option("--once", is_flag=True, help="Exit once every event has an outcome.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-json/--log-console", default=None, help="Default: JSON unless on a terminal.")
@_errors
def run(
    project: Path,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    demo: bool,
    once: bool,
    log_level: str,
    log_json: bool | None,
) -> None:
    """Run the embedded runtime and the HTTP ingress with the flows in flows/."""
    from platypus.logging import configure_logging

    # The demo's story is its summary; keep the log to warnings unless asked.
    level = "warning" if demo and log_level == "info" else log_level
    configure_logging(json=log_json, level=level)
    asyncio.run(_run(project, data_dir, host, port, demo, once))


async def _run(
    project: Path, data_dir: Path | None, host: str | None, port: int | None, demo: bool, once: bool
) -> None:
    from platypus.runtime.embedded import Platypus

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    vendor = None
    if demo:
        from platypus.demo import run_demo

        folder = data_dir or Path(tempfile.mkdtemp(prefix="platypus-demo-"))
        app, summary, vendor = await run_demo(
            project, data_dir=folder, port=0 if port is None else port, echo=click.echo
        )
        click.echo("")
        click.echo(summary.render())
    else:
        app = Platypus.from_project(project, data_dir=data_dir)
        await app.start(host=host, port=port)
        click.echo(f"Platypus is listening on {app.url}: POST CloudEvents to {app.url}/events")
    try:
        if once:
            if not demo:
                await app.drain()
        else:
            click.echo(f"\nServing on {app.url}/events; press Ctrl+C to stop.")
            await stop.wait()
    finally:
        await app.stop()
        if vendor is not None:
            vendor.stop()


_BROKER = click.option(
    "--broker",
    envvar="PLATYPUS_BROKER",
    help="Kafka broker URL, e.g. kafka://host:9092 (default: kafka.broker of platypus.yaml).",
)


@examples(
    "platypus worker --broker kafka://kafka-1:9092",
    "PLATYPUS_BROKER=kafka://kafka-1:9092 platypus worker --log-json",
)
@main.command()
@_PROJECT
@_BROKER
@click.option("--web-port", type=int, help="Port of the worker's /healthz (default 6066).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-json/--log-console", default=None, help="Default: JSON unless on a terminal.")
@_errors
def worker(
    project: Path, broker: str | None, web_port: int | None, log_level: str, log_json: bool | None
) -> None:
    """Run the flows as a Kafka consumer-group worker (faust-streaming).

    Start as many workers as needed: they share the partitions of the events
    topic, and when one stops, its partitions move to the others.
    """
    from platypus.logging import configure_logging
    from platypus.runtime.kafka import run_worker

    configure_logging(json=log_json, level=log_level)
    run_worker(project, broker=broker, web_port=web_port, log_level=log_level)


@examples(
    "platypus web --host 0.0.0.0 --broker kafka://kafka-1:9092",
)
@main.command()
@_PROJECT
@_BROKER
@click.option("--host", help="Interface to listen on (default from platypus.yaml).")
@click.option("--port", type=int, help="Port (default from platypus.yaml).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-json/--log-console", default=None, help="Default: JSON unless on a terminal.")
@_errors
def web(
    project: Path,
    broker: str | None,
    host: str | None,
    port: int | None,
    log_level: str,
    log_json: bool | None,
) -> None:
    """Run the HTTP ingress, producing accepted events to Kafka (acks=all)."""
    from platypus.logging import configure_logging
    from platypus.runtime.kafka import run_web

    configure_logging(json=log_json, level=log_level)
    run_web(project, broker=broker, host=host, port=port)


@examples(
    "platypus indexer --broker kafka://kafka-1:9092 --port 8788",
    "PLATYPUS_BROKER=kafka://kafka-1:9092 platypus indexer --log-json",
)
@main.command()
@_PROJECT
@_BROKER
@click.option("--host", help="Interface of /ops and /healthz (default from platypus.yaml).")
@click.option("--port", type=int, default=8788, show_default=True, help="Port of /ops, /healthz.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-json/--log-console", default=None, help="Default: JSON unless on a terminal.")
@_errors
def indexer(
    project: Path,
    broker: str | None,
    host: str | None,
    port: int,
    log_level: str,
    log_json: bool | None,
) -> None:
    """Index Kafka's dead letters and outcomes into the failed-event store; serve /ops.

    Run one per deployment (a second one stands by until the first stops). It
    also produces the replays asked for from the dashboard or `platypus dlq`.
    """
    from platypus.logging import configure_logging
    from platypus.runtime.kafka import run_indexer

    configure_logging(json=log_json, level=log_level)
    run_indexer(project, broker=broker, host=host, port=port)


@examples(
    "platypus send samples/demo/events.jsonl",
    "platypus send events.jsonl --url http://platypus:8787 --json",
)
@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    default="http://127.0.0.1:8787",
    show_default=True,
    help="Base URL of a running Platypus ingress.",
)
@click.option("--batch-size", default=100, show_default=True, help="Events per request.")
@_JSON
def send(file: Path, url: str, batch_size: int, as_json: bool) -> None:
    """Post the events of a JSON Lines FILE to a running Platypus, in file order."""
    import httpx

    from platypus.send import count_lines, render_summary, send_lines

    endpoint = url.rstrip("/") + "/events"
    with file.open(encoding="utf-8") as handle:
        total = count_lines(handle)
    try:
        with (
            file.open(encoding="utf-8") as handle,
            progressbar(length=total, label=f"Sending {file.name}") as bar,
        ):
            report = asyncio.run(
                send_lines(endpoint, handle, batch_size=batch_size, on_progress=bar.update)
            )
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot post to {endpoint}: {exc}. Is `platypus run` up?", err=True)
        sys.exit(2)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.headline)
        summary = render_summary(report, str(file))
        if summary:
            click.echo(summary, err=True)
    if report.rejected:
        sys.exit(1)


@examples("platypus schemas list", "platypus schemas export build/schemas")
@main.group()
def schemas() -> None:
    """Event schemas."""


@examples("platypus schemas list", "platypus schemas list --json")
@schemas.command("list")
@_JSON
def schemas_list(as_json: bool) -> None:
    """List every registered event type with its personal-data fields."""
    from platypus.schema_registry import SchemaRegistry

    registry = SchemaRegistry.default()
    if as_json:
        echo_json(
            [
                {
                    "type": schema.type,
                    "name": schema.name,
                    "version": schema.version,
                    "description": (schema.description or "").strip(),
                    "personal": sorted(registry.personal_paths(schema.type)),
                }
                for schema in registry
            ]
        )
        return
    for schema in registry:
        personal = ", ".join(sorted(registry.personal_paths(schema.type))) or "-"
        summary = (schema.description or "").strip().splitlines()[0:1]
        click.echo(f"{schema.type}\t{summary[0] if summary else ''}\tpersonal: {personal}")


@examples("platypus schemas export build/schemas", "platypus schemas check build/schemas")
@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_JSON
def schemas_export(directory: Path, as_json: bool) -> None:
    """Write each event type's JSON Schema into DIRECTORY."""
    from platypus.schema_registry import SchemaRegistry

    written = SchemaRegistry.default().export(directory)
    if as_json:
        echo_json({"written": [str(path) for path in written]})
        return
    for path in written:
        click.echo(str(path))


@examples("platypus schemas flows", "platypus schemas flows .vscode/schemas")
@schemas.command("flows")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@_PROJECT
@_JSON
@_errors
def schemas_flows(directory: Path | None, project: Path, as_json: bool) -> None:
    """Write JSON Schemas of flows/*.yaml, *.test.yaml and platypus.yaml, for editors.

    DIRECTORY defaults to json-schemas/ in the project. A file names its schema on
    its first line, `# yaml-language-server: $schema=../json-schemas/flow.schema.json`
    (`platypus new flow` writes it), and VS Code's YAML extension and other editors
    then complete and check it: adapters' settings, durations, ${VAR} values included.
    """
    from platypus.authoring.editor import DEFAULT_DIR, write_schemas

    written = write_schemas(directory or project / DEFAULT_DIR)
    if as_json:
        echo_json({"written": [str(path) for path in written]})
        return
    for path in written:
        click.echo(str(path))


@examples("platypus flows lint", "platypus flows test", "platypus flows graph")
@main.group()
def flows() -> None:
    """Flow files."""


@examples(
    "platypus flows lint",
    "platypus flows lint flows/orders.yaml --json",
    "platypus flows lint --env-file .env.staging",
)
@flows.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_PROJECT
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read ${VAR}s of platypus.yaml from this NAME=value file too (over the environment).",
)
@_JSON
@_errors
def flows_lint(
    paths: tuple[Path, ...], project: Path, fmt: str, env_file: Path | None, as_json: bool
) -> None:
    """Check flow files (default: the project's flows/ folder) against schemas and adapters.

    platypus.yaml is checked with them: a connection's mistake, or a ${VAR} that is
    not set and has no default, is reported at its line there.
    """
    import os

    from platypus.adapter import AdapterRegistry
    from platypus.exceptions import ConfigurationError
    from platypus.flow.lint import (
        Finding,
        format_findings,
        lint_paths,
        read_env_file,
        read_project_config,
    )
    from platypus.schema_registry import SchemaRegistry

    fmt = "json" if as_json else fmt
    environ = {**os.environ, **(read_env_file(env_file) if env_file is not None else {})}
    config, locations, problems = read_project_config(project, environ)
    unusable = [str(problem) for problem in problems if problem.code != "env-unset"]
    if unusable:
        # An invalid platypus.yaml is not a finding about flows: nothing can be checked.
        raise ConfigurationError("; ".join(unusable))
    targets = list(paths) or [config.resolve(config.flows)]
    missing = [str(p) for p in targets if not p.exists()]
    if missing:
        click.echo(f"error: no such file or folder: {', '.join(missing)}", err=True)
        sys.exit(2)
    findings = problems + lint_paths(
        targets,
        schemas=SchemaRegistry.default(),
        adapters=AdapterRegistry.default(),
        config=config,
        config_locations=locations,
    )
    config_file = locations.file if locations is not None else None

    def position(finding: Finding) -> tuple[bool, int, int]:
        # platypus.yaml first, by line; the flows' findings keep lint's order.
        where = finding.location
        if where.file == config_file:
            return (False, where.line, where.column)
        return (True, 0, 0)

    findings.sort(key=position)
    click.echo(format_findings(findings, fmt))  # type: ignore[arg-type]
    if any(f.severity == "error" for f in findings):
        sys.exit(1)


def _register_groups() -> None:
    # Commands that live beside the code they drive.
    from platypus.authoring.cli import (
        flows_graph_command,
        flows_run_command,
        flows_test_command,
        new_group,
        schemas_check_command,
    )
    from platypus.ops.cli import dlq
    from platypus.sources.pollers.cli import backfill

    flows.add_command(flows_test_command)
    flows.add_command(flows_run_command)
    flows.add_command(flows_graph_command)
    schemas.add_command(schemas_check_command)
    main.add_command(new_group)
    main.add_command(dlq)
    main.add_command(backfill)


_register_groups()
