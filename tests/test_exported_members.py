"""The public API: what ``platypus`` exports is sorted, importable and complete."""

from __future__ import annotations

import platypus


def test_all_is_sorted() -> None:
    assert platypus.__all__ == sorted(platypus.__all__)


def test_every_exported_name_exists() -> None:
    missing = [name for name in platypus.__all__ if not hasattr(platypus, name)]
    assert missing == []


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(platypus).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("platypus")
    }
    assert public - set(platypus.__all__) == set()
