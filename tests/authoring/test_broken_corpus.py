"""Every kind of mistake in tests/flows_broken/ is caught with its code, file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from platypus.flow.lint import Finding, lint_paths
from platypus.schema_registry import SchemaRegistry
from tests.authoring.project import ADAPTERS, CONFIG

BROKEN = Path(__file__).parent.parent / "flows_broken"

# (file, extra files linted with it, code, line, column, words in the message)
CORPUS = [
    ("syntax_error.yaml", (), "yaml-syntax", 3, 6, "invalid YAML"),
    ("duplicate_key.yaml", (), "duplicate-key", 8, 5, "duplicate key 'payload'"),
    ("typo_key.yaml", (), "flow-invalid", 8, 5, "did you mean 'payload'?"),
    ("bad_target.yaml", (), "flow-invalid", 7, 9, "is not connection.action"),
    ("bad_expression.yaml", (), "expression-syntax", 3, 7, "invalid expression"),
    ("missing_steps.yaml", (), "flow-invalid", 1, 1, "missing required key 'steps'"),
    ("same_name_again.yaml", ("same_name.yaml",), "duplicate-flow-name", 1, 7, "already used"),
    ("_project/unknown_event_type.yaml", (), "unknown-event-type", 2, 11, "did you mean"),
    ("_project/unknown_connection.yaml", (), "unknown-connection", 5, 9, "did you mean 'orders'"),
    ("_project/unknown_adapter.yaml", (), "unknown-adapter", 5, 9, "adapter 'ordrs'"),
    ("_project/unknown_action.yaml", (), "unknown-action", 5, 9, "did you mean 'create'?"),
    ("_project/field_typo.yaml", (), "expression-field", 7, 16, "did you mean 'data.account_name'"),
    (
        "_project/input_type_number_into_str.yaml",
        (),
        "input-type",
        7,
        18,
        "takes 'reference' as a string, but it is mapped to an integer",
    ),
    (
        "_project/input_type_number_into_date.yaml",
        (),
        "input-type",
        9,
        19,
        "takes 'ordered_on' as a date (text, e.g. 2026-11-02), but it is mapped to a number",
    ),
    (
        "_project/input_type_constant.yaml",
        (),
        "input-type",
        10,
        17,
        "takes 'quantity' as an integer, but it is mapped to the constant 'several'",
    ),
    ("_project/input_missing.yaml", (), "input-missing", 7, 7, "needs 'ordered_on'"),
    ("_project/nested_input_missing.yaml", (), "input-missing", 11, 9, "needs ship_to.country"),
    ("_project/duplicate_step.yaml", (), "flow-invalid", 6, 11, "is used twice"),
    ("_project/later_step.yaml", (), "step-reference", 7, 14, "which runs later"),
    (
        "_project/compare_string_number.yaml",
        (),
        "condition-type",
        3,
        7,
        "data.account_name is a string, but > compares only numbers",
    ),
    (
        "_project/equality_never_true.yaml",
        (),
        "condition-type",
        6,
        11,
        "values of different types are never equal, so == is always false",
    ),
    ("_project/unknown_function.yaml", (), "unknown-function", 7, 14, "did you mean length()?"),
    ("_project/function_arguments.yaml", (), "function-arguments", 7, 17, "join() takes 2"),
    (
        "_project/condition_not_boolean.yaml",
        (),
        "condition-not-boolean",
        3,
        7,
        "counts every number (0 too) as true",
    ),
    ("_project/invalid_params.yaml", (), "invalid-params", 7, 7, "did you mean 'path'?"),
]


@pytest.fixture(scope="module")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.default()


def lint(schemas: SchemaRegistry, *names: str) -> list[Finding]:
    return lint_paths(
        [BROKEN / name for name in names], schemas=schemas, adapters=ADAPTERS, config=CONFIG
    )


@pytest.mark.parametrize(
    ("name", "others", "code", "line", "column", "words"),
    CORPUS,
    ids=[row[0].removeprefix("_project/").removesuffix(".yaml") for row in CORPUS],
)
def test_each_broken_flow_is_caught_at_its_line(
    schemas: SchemaRegistry,
    name: str,
    others: tuple[str, ...],
    code: str,
    line: int,
    column: int,
    words: str,
) -> None:
    findings = [f for f in lint(schemas, *others, name) if f.location.file == str(BROKEN / name)]

    # The first finding is the one named; a file may repeat its mistake (bad_expression).
    assert findings, "nothing found"
    first = findings[0]
    assert (first.code, first.location.line, first.location.column) == (code, line, column), [
        str(f) for f in findings
    ]
    assert {f.code for f in findings} == {code}
    assert words in first.message


def test_the_corpus_covers_every_broken_flow_file() -> None:
    on_disk = {
        path.relative_to(BROKEN).as_posix()
        for path in BROKEN.rglob("*.yaml")
        if path.name != "same_name.yaml"  # linted with same_name_again.yaml
    }

    assert on_disk == {row[0] for row in CORPUS}
    assert len(CORPUS) >= 20


def test_a_scaffold_style_flow_with_fitting_types_lints_clean(
    schemas: SchemaRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "fine.yaml"
    path.write_text(
        "name: fine\n"
        "consumes: [sales.opportunity.closed_won.v1]\n"
        "when: data.amount >= `1000` && data.currency == 'EUR'\n"
        "steps:\n"
        "  - name: create\n"
        "    to: orders.create\n"
        "    when: length(data.line_items) > `0`\n"
        "    payload:\n"
        "      reference: data.opportunity_id\n"
        "      amount: data.amount\n"
        "      ordered_on: data.close_date\n"
        "      quantity: data.line_items[0].quantity\n"
        "      ship_to: {city: \"'Sydney'\", country: \"'AU'\"}\n",
        encoding="utf-8",
    )

    assert lint_paths([path], schemas=schemas, adapters=ADAPTERS, config=CONFIG) == []
