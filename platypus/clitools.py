"""What every ``platypus`` command shares: options, output and exit codes.

Commands live beside the code they drive (`platypus.ops.cli`,
`platypus.authoring.cli`, ...); they take these from here so they behave alike
(docs/cli.md):

* ``--project DIR`` (`project_option`) and ``--json`` (`json_option`, printed with
  `echo_json`: machine output on stdout, the fields documented);
* exit codes (`exit_on_error`): 0 done, 1 the check found problems, 2 the command
  could not run (``error: ...`` on stderr), 130 interrupted;
* no colours or escape codes unless stdout is a terminal and ``NO_COLOR`` is unset
  (`progressbar`);
* examples at the end of ``--help`` (`examples`).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from platypus.exceptions import PlatypusError
from platypus.logging import color_allowed

__all__ = [
    "EXIT_FOUND",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNUSABLE",
    "echo_json",
    "examples",
    "exit_on_error",
    "json_option",
    "progressbar",
    "project_option",
]

EXIT_OK = 0
"""The command did what it was asked, and found nothing wrong."""
EXIT_FOUND = 1
"""The command ran and found what it checks for: lint errors, failed tests, refused events."""
EXIT_UNUSABLE = 2
"""The command could not run: bad usage, bad configuration, a service out of reach."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl+C (128 + SIGINT, as shells report it)."""

F = TypeVar("F", bound=Callable[..., Any])

project_option = click.option(
    "--project",
    "project",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Project folder holding platypus.yaml and flows/.",
)
"""``--project DIR``: the folder holding ``platypus.yaml`` and ``flows/``."""


def exit_on_error(func: F) -> F:
    """Turn Platypus errors into a one-line message and exit status 2, not a traceback.

    Ctrl+C exits 130, with a line saying so, rather than a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatypusError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNUSABLE)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON on stdout instead of text (fields: docs/cli.md).",
)
"""``--json``: the command's result as JSON, for scripts; passed as ``as_json``."""


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (dates and paths as text)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def examples(*lines: str) -> Callable[[F], F]:
    """Add an ``Examples:`` section to the end of a command's ``--help``.

    Put it above ``@click.command`` (or ``@group.command``), so it receives the command.
    """

    def decorate(command: F) -> F:
        body = "\n".join(f"  {line}" for line in lines)
        # \b keeps click from re-wrapping the lines.
        command.epilog = f"Examples:\n\n\b\n{body}"  # type: ignore[attr-defined]
        return command

    return decorate


class _Plain:
    """A stream that says it is no terminal, so click draws no bar and no escape codes."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def progressbar(*, length: int, label: str, file: IO[str] | None = None) -> Iterator[Any]:
    """``click.progressbar`` on stderr that draws only on a terminal without ``NO_COLOR``.

    Elsewhere (a pipe, a file, ``NO_COLOR`` set) it prints its label once, plainly.
    """
    stream = file if file is not None else click.get_text_stream("stderr")
    target: Any = stream if color_allowed(stream) else _Plain(stream)
    with click.progressbar(length=length, label=label, file=target) as bar:
        yield bar
