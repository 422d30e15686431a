"""Turning pydantic validation errors into `FieldError` lists people can act on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from platypus.exceptions import FieldError
from platypus.redaction import MASK, is_personal, normalize_path

__all__ = ["field_errors", "format_loc"]

_GOT_LIMIT = 120


def format_loc(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("line_items", 0, "qty")`` -> ``line_items[0].qty``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _GOT_LIMIT else text[: _GOT_LIMIT - 3] + "..."


def field_errors(
    exc: ValidationError,
    *,
    prefix: str = "",
    personal: Iterable[str] = (),
    personal_prefix: str = "",
) -> list[FieldError]:
    """Structured errors (path, expected, got) from a pydantic `ValidationError`.

    ``personal`` holds personal-data path patterns relative to ``personal_prefix``;
    the ``got`` of a matching field, or of anything that would contain one, is masked.
    """
    patterns = tuple(personal)
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = format_loc(loc, prefix)
        rel: str | None = format_loc(loc)
        if personal_prefix:
            # Patterns are relative to personal_prefix: only paths inside it can match.
            inside = path.startswith(personal_prefix) and path[len(personal_prefix) :][:1] in (
                "",
                ".",
                "[",
            )
            rel = path[len(personal_prefix) :].lstrip(".") if inside else None
        # An error of the whole object (loc ()) would show all of it: the message says what.
        got = "" if err["type"] == "missing" or not loc else _show(err.get("input"))
        if (
            got
            and patterns
            and rel is not None
            and (is_personal(rel, patterns) or _holds_personal(rel, patterns))
        ):
            got = MASK
        out.append(FieldError(path=path, message=err["msg"], expected=_expected(err), got=got))
    return out


def _holds_personal(path: str, patterns: Sequence[str]) -> bool:
    # A wrong value where an object holding personal fields belongs (a string
    # for a contact, say) is as personal as those fields would have been.
    norm = normalize_path(path)
    if not norm:
        return True
    return any(p.startswith(norm + ".") or p.startswith(norm + "[") for p in patterns)


def _expected(err: Any) -> str:
    kind = str(err["type"])
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "a value (field is required)"
    if "expected" in ctx:
        return str(ctx["expected"])
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return kind.split("_")[0]
    if ctx:
        return ", ".join(f"{k}={v}" for k, v in sorted(ctx.items()) if k != "error")
    return kind
