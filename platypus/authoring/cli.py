"""The authoring commands: ``flows test``, ``flows run --dry-run``, ``flows graph``,
``new flow`` and ``schemas check``.

They are plain click commands, added to ``platypus`` by `register`::

    from platypus.authoring.cli import register
    register(main)      # main is the `platypus` click group
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from platypus.clitools import echo_json, examples, exit_on_error, json_option, project_option

__all__ = [
    "flows_graph_command",
    "flows_run_command",
    "flows_test_command",
    "new_group",
    "register",
    "schemas_check_command",
]

_PROJECT = project_option
_errors = exit_on_error
_JSON = json_option


@examples(
    "platypus flows test",
    "platypus flows test flows/orders.test.yaml -v",
    "platypus flows test --json | jq '.cases[] | select(.passed | not)'",
)
@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@_PROJECT
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
@_JSON
@_errors
def flows_test_command(
    paths: tuple[Path, ...], project: Path, verbose: bool, as_json: bool
) -> None:
    """Run the test cases kept beside flows (<flow>.test.yaml), adapters faked.

    PATHS are flow files, test files or folders (default: the project's flows/).
    Exits 1 if any case fails, showing a diff of expected and actual calls.
    """
    from platypus.adapter import AdapterRegistry
    from platypus.authoring.harness import run_test_file, summary, test_files
    from platypus.config import load_config
    from platypus.schema_registry import SchemaRegistry

    config = load_config(root=project)
    targets = list(paths) or [config.resolve(config.flows)]
    files = [found for target in targets for found in test_files(target)]
    if not files:
        if as_json:
            echo_json({"passed": 0, "failed": 0, "files": 0, "cases": []})
        else:
            click.echo("no flow tests found (write them in <flow>.test.yaml beside each flow)")
        sys.exit(1)
    schemas, adapters = SchemaRegistry.default(), AdapterRegistry.default()
    results = []
    for file in files:
        results.extend(
            asyncio.run(run_test_file(file, project=project, schemas=schemas, adapters=adapters))
        )
    if as_json:
        passed = sum(1 for result in results if result.passed)
        echo_json(
            {
                "passed": passed,
                "failed": len(results) - passed,
                "files": len(files),
                "cases": [result.to_dict() for result in results],
            }
        )
    else:
        for result in results:
            if verbose or not result.passed:
                click.echo(result.report())
        click.echo(summary(results, len(files)))
    if not results or any(not result.passed for result in results):
        sys.exit(1)


@examples(
    "platypus flows run --dry-run samples/opportunity-to-subscription.event.json",
    "platypus flows run --dry-run events.jsonl --flow orders --json",
)
@click.command("run")
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("--flow", "flow_name", help="Only this flow (default: every flow of the type).")
@_PROJECT
@_JSON
@_errors
def flows_run_command(
    event_file: Path, dry_run: bool, flow_name: str | None, project: Path, as_json: bool
) -> None:
    """Show what each step would send for the event(s) in EVENT_FILE (JSON or JSON Lines).

    Earlier steps' results are not known without sending: a step reading one
    sees the placeholder <steps.STEP.FIELD>, and a step whose condition reads
    one says it depends on that step's answer. Exits 1 if an event would be
    refused or a step would fail.
    """
    from platypus.adapter import AdapterRegistry
    from platypus.authoring.dryrun import dry_run as plan
    from platypus.config import load_config
    from platypus.flow.loader import load_flows
    from platypus.schema_registry import SchemaRegistry

    if not dry_run:
        click.echo(
            "error: `platypus flows run` only has --dry-run; `platypus run` runs flows for real",
            err=True,
        )
        sys.exit(2)
    config = load_config(root=project)
    flows = load_flows(config.resolve(config.flows))
    if flow_name is not None:
        flows = [flow for flow in flows if flow.name == flow_name]
        if not flows:
            click.echo(f"error: no flow named {flow_name!r}", err=True)
            sys.exit(2)
    events = _read_events(event_file)
    schemas, adapters = SchemaRegistry.default(), AdapterRegistry.default()
    failed = False
    plans = []
    for index, event in enumerate(events):
        result = plan(event, flows, schemas=schemas, adapters=adapters, config=config)
        failed = failed or result.failed
        plans.append(result.to_dict())
        if not as_json:
            if index:
                click.echo("")
            click.echo(result.render())
    if as_json:
        echo_json({"events": plans})
    if failed:
        sys.exit(1)


def _read_events(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        found = [json.loads(text)]
    except ValueError:
        try:
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise click.ClickException(f"{path} is neither JSON nor JSON Lines: {exc}") from None
    if not all(isinstance(event, dict) for event in found):
        raise click.ClickException(f"{path}: every event is a JSON object (a CloudEvent)")
    return found


@examples(
    "platypus flows graph >> docs/flows.md      # a ```mermaid block for Markdown",
    "platypus flows graph --bare > flows.mmd    # plain Mermaid, for mermaid-cli",
    "platypus flows graph --format svg -o flows.svg",
    "platypus flows graph --json",
)
@click.command("graph")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@_PROJECT
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "svg"]), default="mermaid", show_default=True
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bare", is_flag=True, help="Mermaid without the ```mermaid fence.")
@_JSON
@_errors
def flows_graph_command(
    paths: tuple[Path, ...],
    project: Path,
    fmt: str,
    output: Path | None,
    bare: bool,
    as_json: bool,
) -> None:
    """Draw event types -> flows (their condition and steps, in order) -> connections.

    Mermaid comes in a ```mermaid fence, ready for Markdown (--bare leaves it
    out); --format svg draws a picture any browser opens.
    """
    from platypus.authoring.graph import build_graph, to_mermaid, to_svg
    from platypus.config import load_config
    from platypus.flow.loader import flow_files, load_flow

    config = load_config(root=project)
    targets = list(paths) or [config.resolve(config.flows)]
    files = [f for t in targets for f in (flow_files(t) if t.is_dir() else [t])]
    graph = build_graph([load_flow(file) for file in files], config)
    if as_json and output is None:
        echo_json(graph.to_dict())
        return
    text = to_mermaid(graph, fenced=not bare) if fmt == "mermaid" else to_svg(graph)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")


@examples("platypus new flow big-deals --consumes sales.opportunity.closed_won.v1 --to vendor.post")
@click.group("new")
def new_group() -> None:
    """Start something new from a template."""


@examples(
    "platypus new flow big-deals --consumes sales.opportunity.closed_won.v1 --to vendor.post",
    "platypus new flow hires --consumes people.worker.hired.v1 --json",
)
@new_group.command("flow")
@click.argument("name")
@click.option("--consumes", help="Event type (default: the first registered one).")
@click.option(
    "--to",
    "to",
    default="sink.send",
    show_default=True,
    help="connection.action the flow's step writes to.",
)
@_PROJECT
@_JSON
@_errors
def new_flow_command(
    name: str, consumes: str | None, to: str, project: Path, as_json: bool
) -> None:
    """Write flows/NAME.yaml, its tests and samples/NAME.event.json, ready to edit."""
    from platypus.adapter import AdapterRegistry
    from platypus.authoring.editor import DEFAULT_DIR, write_schemas
    from platypus.authoring.scaffold import scaffold_flow
    from platypus.config import load_config
    from platypus.schema_registry import SchemaRegistry

    config = load_config(root=project)
    schemas = SchemaRegistry.default()
    if consumes is None:
        consumes = next(iter(schemas)).type
    made = scaffold_flow(
        project,
        name,
        consumes=consumes,
        to=to,
        schemas=schemas,
        adapters=AdapterRegistry.default(),
        config=config,
    )
    created = [made.flow, made.tests, made.sample]
    if not (project / DEFAULT_DIR).exists():
        # The new files name their schemas on their first line: make them exist.
        created += write_schemas(project / DEFAULT_DIR)
    if as_json:
        echo_json({"created": [str(path) for path in created]})
        return
    for path in created:
        click.echo(f"created {path}")
    click.echo("next: edit the flow, then `platypus flows lint` and `platypus flows test`")


@examples(
    "platypus schemas export build/schemas-before   # on the main branch",
    "platypus schemas check build/schemas-before    # on yours: exit 1 if anything breaks",
)
@click.command("check")
@click.argument("old_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_JSON
@_errors
def schemas_check_command(old_dir: Path, as_json: bool) -> None:
    """Compare the schemas with ones exported earlier to OLD_DIR; exit 1 if any change breaks."""
    from platypus.authoring.compat import check_directory
    from platypus.schema_registry import SchemaRegistry

    report = check_directory(old_dir, SchemaRegistry.default())
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.render())
    if report.breaking:
        sys.exit(1)


def register(main: click.Group) -> None:
    """Add the authoring commands to the ``platypus`` group (and its flows/schemas groups).

    Commands already there are left alone, so calling it twice is harmless.
    """
    groups = {
        "flows": [flows_test_command, flows_run_command, flows_graph_command],
        "schemas": [schemas_check_command],
    }
    for group_name, commands in groups.items():
        group = main.commands.get(group_name)
        if not isinstance(group, click.Group):
            group = click.Group(group_name)
            main.add_command(group)
        for command in commands:
            if command.name not in group.commands:
                group.add_command(command)
    if "new" not in main.commands:
        main.add_command(new_group)
