"""What every ``platypus`` command shares: the ``--project`` option and error handling.

Commands live beside the code they drive (`platypus.ops.cli`,
`platypus.authoring.cli`, ...); they take these from here so they behave alike.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from platypus.exceptions import PlatypusError

__all__ = ["exit_on_error", "project_option"]

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
    """Turn Platypus errors into a one-line message and exit status 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlatypusError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
