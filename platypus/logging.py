"""structlog set up once: JSON when not on a terminal, secrets and personal data masked.

Two things are masked in every log line, whoever wrote it:

* values of keys that look like credentials (`platypus.redaction.SECRET_WORDS`:
  ``password``, ``token``, ``authorization``, ``secret``, ``api_key``...), and
  pydantic ``SecretStr``s;
* the personal-data values of the event being processed, wherever they appear
  and however a vendor changed them (an e-mail address echoed lower-cased,
  escaped or cut in an error message: `platypus.redaction.Scrubber`). The
  runtime declares them with `redaction_scope` around the processing of each event.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import TracebackType
from typing import Any, TextIO, cast

import structlog
from pydantic import SecretBytes, SecretStr

from platypus.redaction import MASK, Scrubber, is_secret_name, scrubber

__all__ = [
    "color_allowed",
    "configure_logging",
    "context_var",
    "debug_enabled",
    "get_logger",
    "redaction_scope",
    "scrub_event_dict",
]

Values = Iterable[str] | Callable[[], Iterable[str]]

_personal: contextvars.ContextVar[tuple[Values, ...]] = contextvars.ContextVar(
    "platypus_personal_values", default=()
)


class redaction_scope:  # noqa: N801 -- used as a function: ``with redaction_scope(values):``
    """Mask ``values`` (one event's personal data) in every log line written inside.

    ``values`` may be a callable returning them: it is called only if a line is
    actually written, so events that log nothing never pay for finding them.
    A class rather than a generator: it is entered once per event processed.
    """

    __slots__ = ("_token", "_values")

    def __init__(self, values: Values) -> None:
        self._values = values
        self._token: contextvars.Token[tuple[Values, ...]] | None = None

    def __enter__(self) -> None:
        self._token = _personal.set((*_personal.get(), self._values))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _personal.reset(self._token)
            self._token = None


def _values_in_scope() -> Scrubber:
    sources = _personal.get()
    if not sources:
        return scrubber(())
    found: set[str] = set()
    for source in sources:
        found.update(source() if callable(source) else source)
    return scrubber(found)


def scrub_event_dict(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: mask credentials by key and personal values anywhere."""
    values = _values_in_scope()
    return {key: _scrub(key, value, values) for key, value in event_dict.items()}


def _scrub(key: str, value: Any, values: Scrubber) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(key, str) and is_secret_name(key):
        return MASK if value not in (None, "") else value
    if isinstance(value, str):
        return values.text(value)
    if isinstance(value, Mapping):
        return {k: _scrub(str(k), v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub("", v, values) for v in value]
    if isinstance(value, BaseException):
        return values.text(f"{type(value).__name__}: {value}")
    return value


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not when logging was set up.

    A command run in-process (click's test runner) swaps ``sys.stderr`` for a buffer
    it closes afterwards; lines logged later still reach the real stream.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def color_allowed(stream: Any) -> bool:
    """Whether colours and other escape codes may go to ``stream``.

    Only to a terminal, and never when ``NO_COLOR`` is set to anything
    (https://no-color.org) or ``TERM`` is ``dumb``.
    """
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process.

    ``json=None`` picks JSON unless the stream is a terminal. Standard-library
    loggers (uvicorn, httpx) go through the same processors.
    """
    # Duck-typed: what PrintLogger and StreamHandler call (write, flush, isatty).
    out: TextIO = stream or cast(TextIO, _CurrentStderr())
    use_json = not out.isatty() if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_event_dict,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=color_allowed(out))
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(numeric, logging.WARNING))


# What a filtering bound logger's disabled methods are (one shared no-op).
_DISABLED = structlog.make_filtering_bound_logger(logging.CRITICAL).debug


def debug_enabled() -> bool:
    """Whether a debug line logged now would be written, as structlog is configured now.

    A lookup in structlog's configuration: hot paths ask it before building a
    debug line, since calling a lazy logger costs microseconds even when the
    level drops the line. Any wrapper other than a filtering one says yes.
    """
    return getattr(structlog.get_config()["wrapper_class"], "debug", None) is not _DISABLED


def context_var(name: str) -> contextvars.ContextVar[Any]:
    """The variable behind ``structlog.contextvars.bind_contextvars(name=...)``.

    Setting and resetting it is what binding and resetting ``name`` do, without
    building a mapping of names and tokens each time: for what is bound once or
    more per event. Log lines carry it as structlog's own bindings (``merge_contextvars``).
    """
    tokens = structlog.contextvars.bind_contextvars(**{name: None})
    structlog.contextvars.reset_contextvars(**tokens)
    var: contextvars.ContextVar[Any] = tokens[name].var
    return var


def get_logger(name: str = "platypus") -> Any:
    """A structlog logger bound with ``logger=name``."""
    return structlog.get_logger(name).bind(logger=name)
