"""`platypus._frozen.quick_init`: the same instances as the dataclass's own ``__init__``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from platypus._frozen import quick_init
from platypus.adapter import Request
from platypus.records import Outcome, Record
from platypus.runtime.processor import FlowOutcome


def _made(quick: bool) -> type[Any]:
    @dataclass(frozen=True, slots=True)
    class Shape:
        name: str
        size: int
        tags: list[str] = field(default_factory=list)
        note: str = ""

    return quick_init(Shape) if quick else Shape


Plain, Quick = _made(False), _made(True)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a", 1), {}),
        (("a",), {"size": 2}),
        ((), {"name": "a", "size": 3, "note": "n"}),
        (("a", 4, ["x"], "n"), {}),
        (("a", 5), {"tags": ["y"]}),
    ],
)
def test_an_instance_is_the_one_the_dataclass_init_makes(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)
    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert repr(quick) == repr(plain)
    assert quick == Quick(*args, **kwargs)


def test_a_default_factory_makes_a_new_value_for_every_instance() -> None:
    first, second = Quick("a", 1), Quick("a", 1)
    assert first.tags == []
    assert first.tags is not second.tags


def test_the_instance_stays_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quick("a", 1).name = "b"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a",), {}),
        (("a", 1), {"colour": "red"}),
        (("a", 1, [], "", 9), {}),
        (("a",), {"name": "b"}),
    ],
)
def test_wrong_arguments_are_refused_as_by_the_dataclass(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        Plain(*args, **kwargs)
    with pytest.raises(TypeError):
        Quick(*args, **kwargs)


def test_only_frozen_dataclasses_with_slots_and_plain_fields_are_taken() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, NoSlots, KeywordOnly, Checked):
        with pytest.raises(TypeError):
            quick_init(cls)


@pytest.mark.parametrize("cls", [Record, Outcome, Request, FlowOutcome])
def test_the_per_event_records_are_built_by_the_quick_init(cls: type[Any]) -> None:
    assert cls.__init__.__module__ == cls.__module__
    assert "_set_" in " ".join(cls.__init__.__code__.co_names)
