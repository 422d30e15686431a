"""Every kind of mistake in tests/flows_broken/ is caught with its code, file and line.

Each file holds one mistake: lint must report it first, at its line and column,
with the words of its hint, and report nothing of another kind. The cases under
``_config/`` are projects whose mistake is in ``platypus.yaml``; tests/flows_good/
(valid but tricky flows) must stay free of findings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from platypus.cli import flows_lint
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
    (
        "_project/soql_bind_missing.yaml",
        (),
        "bind-missing",
        6,
        20,
        "params.soql binds :acount_id, but the payload has no 'acount_id' (it maps: "
        "account_id), so 'salesforce.query' fails on every event; did you mean :account_id?",
    ),
    # -- issue 15: what broke at run time, caught at lint time
    (
        "_project/shape_object_whole.yaml",
        (),
        "input-shape",
        10,
        22,
        "billToContact needs firstName, lastName; billToContact does not take name, email, phone",
    ),
    (
        "_project/shape_sold_to_contact.yaml",
        (),
        "input-shape",
        11,
        22,
        "soldToContact needs firstName, lastName",
    ),
    (
        "_project/nested_input_type.yaml",
        (),
        "input-type",
        11,
        15,
        "takes 'ship_to.city' as a string, but it is mapped to an integer",
    ),
    (
        "_project/nested_contact_type.yaml",
        (),
        "input-type",
        10,
        51,
        "takes 'billToContact.lastName' as a string, but it is mapped to an integer",
    ),
    (
        "_project/nested_unknown_key.yaml",
        (),
        "input-unknown-key",
        10,
        58,
        "takes no billToContact.email in its input (it takes: firstName, lastName, workEmail",
    ),
    (
        "_project/number_to_slack_text.yaml",
        (),
        "input-type",
        8,
        13,
        "takes 'text' as null or a string, but it is mapped to an integer",
    ),
    (
        "_project/count_to_slack_text.yaml",
        (),
        "input-type",
        8,
        13,
        "takes 'text' as null or a string, but it is mapped to an integer",
    ),
    (
        "_project/step_result_number_to_text.yaml",
        (),
        "input-type",
        12,
        13,
        "takes 'text' as null or a string, but it is mapped to an integer",
    ),
    (
        "_project/blocks_as_text.yaml",
        (),
        "input-type",
        8,
        15,
        "takes 'blocks' as a list or null, but it is mapped to the constant 'Deal won'",
    ),
    (
        "_project/currency_as_number.yaml",
        (),
        "input-type",
        8,
        17,
        "takes 'currency' as a string, but it is mapped to the constant 978",
    ),
    (
        "_project/bill_cycle_day_text.yaml",
        (),
        "input-type",
        9,
        21,
        "takes 'billCycleDay' as an integer, but it is mapped to the constant 'first'",
    ),
    (
        "_project/optional_to_required.yaml",
        (),
        "input-nullable",
        7,
        18,
        "needs 'reference', but data.account_number may be null",
    ),
    (
        "_project/optional_to_required_nested.yaml",
        (),
        "input-nullable",
        10,
        23,
        "needs 'ship_to.city', but data.position.manager_id may be null",
    ),
    (
        "_project/one_of_missing.yaml",
        (),
        "input-missing",
        7,
        7,
        "needs 'text' or 'blocks' in its input, but the payload maps none of them",
    ),
    ("_project/one_of_null.yaml", (), "input-missing", 7, 7, "needs 'text' or 'blocks'"),
    (
        "_project/join_swapped.yaml",
        (),
        "function-arguments",
        8,
        13,
        "the arguments are the wrong way round, e.g. join(', ', data.line_items[*].product_code)",
    ),
    (
        "_project/join_numbers.yaml",
        (),
        "function-arguments",
        8,
        13,
        "join() takes its second argument as a list of strings, but data.line_items[*].quantity "
        "is a list of numbers",
    ),
    (
        "_project/sum_strings.yaml",
        (),
        "function-arguments",
        7,
        14,
        "sum() takes its first argument as a list of numbers, but "
        "data.line_items[*].product_code is a list of strings",
    ),
    (
        "_project/abs_name.yaml",
        (),
        "function-arguments",
        7,
        13,
        "abs() takes its first argument as a number, but data.account_name is a string",
    ),
    (
        "_project/length_number.yaml",
        (),
        "function-arguments",
        6,
        11,
        "length() takes its first argument as a string or a list or an object",
    ),
    (
        "_project/starts_with_number.yaml",
        (),
        "function-arguments",
        6,
        11,
        "starts_with() takes its first argument as a string, but data.line_items[0].quantity is "
        "a number",
    ),
    (
        "_project/max_of_name.yaml",
        (),
        "function-arguments",
        6,
        20,
        "max() takes its first argument as a list of numbers or a list of strings",
    ),
    (
        "_project/compare_date_number.yaml",
        (),
        "condition-type",
        6,
        11,
        "data.close_date is a string, but > compares only numbers",
    ),
    (
        "_project/compare_step_result_string.yaml",
        (),
        "condition-type",
        9,
        11,
        "steps.find.accountNumber is a string, but > compares only numbers",
    ),
    (
        "_project/compare_step_count_text.yaml",
        (),
        "condition-type",
        10,
        11,
        "steps.lookup.total_size is a number and '0' is a string: values of different types are "
        "never equal",
    ),
    (
        "_project/step_result_field_typo.yaml",
        (),
        "expression-field",
        9,
        23,
        "steps.find_account has no field 'account_number'; did you mean "
        "'steps.find_account.accountNumber'?",
    ),
    (
        "_project/step_result_slack_typo.yaml",
        (),
        "expression-field",
        12,
        16,
        "did you mean 'steps.notify.channel'?",
    ),
    (
        "_project/step_result_records_typo.yaml",
        (),
        "expression-field",
        10,
        19,
        "did you mean 'steps.lookup.records'?",
    ),
    (
        "_project/enum_case.yaml",
        (),
        "condition-enum",
        3,
        7,
        "never 'Involuntary', so == is always false; did you mean 'involuntary'?",
    ),
    (
        "_project/enum_unknown_value.yaml",
        (),
        "condition-enum",
        6,
        11,
        "data.type is one of 'Prospect', 'Customer', 'Partner', 'Other', never 'Client', so != "
        "is always true",
    ),
    ("_project/enum_worker_type.yaml", (), "condition-enum", 3, 7, "never 'contractor'"),
    (
        "_project/enum_reversed_operands.yaml",
        (),
        "condition-enum",
        3,
        7,
        "data.termination_type is one of 'voluntary', 'involuntary', never 'fired'",
    ),
    (
        "_project/when_bare_string.yaml",
        (),
        "condition-not-boolean",
        3,
        7,
        "the condition is true for every event",
    ),
    (
        "_project/when_bare_list.yaml",
        (),
        "condition-not-boolean",
        6,
        11,
        "compare it, e.g. length(data.line_items) > `1`",
    ),
    (
        "_project/when_count.yaml",
        (),
        "condition-not-boolean",
        6,
        11,
        "counts every number (0 too) as true",
    ),
    (
        "_project/when_constant_true.yaml",
        (),
        "condition-constant",
        3,
        7,
        "is a constant: the condition is always true",
    ),
    (
        "_project/when_constant_text.yaml",
        (),
        "condition-constant",
        6,
        11,
        "the condition is always true",
    ),
    (
        "_project/personal_reason_to_slack.yaml",
        (),
        "personal-data",
        8,
        13,
        "sends personal data (data.reason) to 'text' of 'slack.post_message'",
    ),
    (
        "_project/personal_names_in_join.yaml",
        (),
        "personal-data",
        8,
        13,
        "allow_personal_data: [data.first_name, data.last_name]",
    ),
    (
        "_project/personal_in_blocks.yaml",
        (),
        "personal-data",
        9,
        9,
        "(data.work_email) to 'blocks'",
    ),
    (
        "_project/personal_partly_allowed.yaml",
        (),
        "personal-data",
        9,
        13,
        "(data.last_name) to 'text'"
        " of 'slack.post_message', free text that is kept and searchable by everyone who can "
        "read it: leave it out, or say the step may send it with "
        "allow_personal_data: [data.first_name, data.last_name]",
    ),
    (
        "_project/personal_whole_object.yaml",
        (),
        "personal-data",
        8,
        15,
        "data.billing_contact.name, data.billing_contact.email, data.billing_contact.phone",
    ),
    ("_project/personal_owner_email.yaml", (), "personal-data", 8, 13, "(data.owner_email)"),
    # Personal data read only inside a function's argument, a list or an object.
    (
        "_project/personal_to_string_object.yaml",
        (),
        "personal-data",
        8,
        13,
        "(data.billing_contact.name, data.billing_contact.email, data.billing_contact.phone)"
        " to 'text'",
    ),
    (
        "_project/personal_object_in_function_in_list.yaml",
        (),
        "personal-data",
        8,
        13,
        "allow_personal_data: [data.billing_contact.name, data.billing_contact.email, "
        "data.billing_contact.phone]",
    ),
    (
        "_project/personal_in_projection.yaml",
        (),
        "personal-data",
        8,
        13,
        "data.billing_contact.email",
    ),
    ("_project/personal_nested_functions.yaml", (), "personal-data", 8, 13, "(data.last_name)"),
    (
        "_project/personal_in_function_in_blocks.yaml",
        (),
        "personal-data",
        8,
        15,
        "(data.work_email) to 'blocks'",
    ),
    (
        "_project/personal_in_multiselect.yaml",
        (),
        "personal-data",
        8,
        13,
        "sends personal data (data.billing_contact.name) to 'text'",
    ),
    ("_project/personal_default_of_or.yaml", (), "personal-data", 8, 13, "(data.reason) to 'text'"),
    ("_project/unclosed_double_quote.yaml", (), "yaml-syntax", 7, 15, 'unclosed " quote'),
    (
        "_project/unclosed_single_quote.yaml",
        (),
        "yaml-syntax",
        3,
        7,
        "close it: when: 'data.amount > `10`'",
    ),
    (
        "_project/unclosed_quote_closed_later.yaml",
        (),
        "yaml-syntax",
        3,
        7,
        "so YAML reads on and fails at line 8",
    ),
    (
        "_project/unclosed_raw_string.yaml",
        (),
        "expression-syntax",
        7,
        17,
        "Unclosed ' delimiter; close the '",
    ),
    ("_project/unclosed_backtick.yaml", (), "expression-syntax", 3, 7, "Unclosed ` delimiter"),
    (
        "_project/unclosed_double_in_expression.yaml",
        (),
        "expression-syntax",
        3,
        7,
        "text is written as a 'raw string' in JMESPath (\"...\" is a field name), e.g. "
        "data.currency == 'EUR'",
    ),
    (
        "_project/slack_connection_typo.yaml",
        (),
        "unknown-connection",
        5,
        9,
        "did you mean 'slack'?",
    ),
    ("_project/slack_action_typo.yaml", (), "unknown-action", 5, 9, "did you mean 'post_message'?"),
    (
        "_project/field_other_nesting.yaml",
        (),
        "expression-field",
        6,
        22,
        "did you mean 'data.position.title'?",
    ),
    (
        "_project/field_without_data.yaml",
        (),
        "expression-field",
        3,
        7,
        "did you mean 'data.worker_type'?",
    ),
    (
        "_project/field_in_list_items.yaml",
        (),
        "expression-field",
        6,
        22,
        "did you mean 'data.line_items[*].product_code'?",
    ),
    (
        "_project/retry_max_retries.yaml",
        (),
        "flow-invalid",
        3,
        9,
        "unknown key 'max_retries'; did you mean 'max_attempts'?",
    ),
    (
        "_project/retry_backoff_in_step.yaml",
        (),
        "flow-invalid",
        7,
        7,
        "unknown key 'backoff'; did you mean 'multiplier'?",
    ),
    (
        "_project/condition_key.yaml",
        (),
        "flow-invalid",
        6,
        5,
        "unknown key 'condition'; did you mean 'when'?",
    ),
    (
        "_project/unquoted_constant.yaml",
        (),
        "expression-field",
        7,
        17,
        "if EUR is meant as text, a constant needs quotes, as a 'raw string' or a `backtick` "
        "literal: 'EUR' (in YAML: \"'EUR'\")",
    ),
    (
        "_project/unquoted_constant_in_when.yaml",
        (),
        "expression-field",
        3,
        7,
        "literal: data.currency == 'EUR'",
    ),
    (
        "_project/double_quoted_constant.yaml",
        (),
        "expression-field",
        3,
        7,
        '"EUR" in double quotes is a field name in JMESPath',
    ),
    (
        "_project/unquoted_in_filter.yaml",
        (),
        "expression-field",
        6,
        20,
        "data.line_items[?currency == 'EUR'].product_code",
    ),
    (
        "_project/unquoted_words.yaml",
        (),
        "expression-syntax",
        3,
        7,
        "a constant needs quotes, as a 'raw string': data.account_name == 'Acme Pty'",
    ),
    (
        "_project/dashed_step_name.yaml",
        (),
        "expression-syntax",
        8,
        22,
        'a step name with a dash must be quoted with double quotes: steps."create-order".id',
    ),
    (
        "_project/unknown_step_typo.yaml",
        (),
        "step-reference",
        8,
        22,
        "which does not exist; did you mean 'create'?",
    ),
    (
        "_project/null_keyword.yaml",
        (),
        "expression-field",
        3,
        7,
        "JMESPath has no keyword null: write it as a `backtick` literal: data.reason != `null`",
    ),
    (
        "_project/not_binds_tighter.yaml",
        (),
        "expression-field",
        9,
        11,
        "the value is a boolean and has no field 'find'; ! applies to the first name only: "
        "write !(steps.find.found)",
    ),
    (
        "_project/enum_in_list.yaml",
        (),
        "condition-enum",
        6,
        11,
        "the items of data.changes are one of 'job', 'manager', 'location', never 'jobs', so "
        "contains() is always false; did you mean 'job'?",
    ),
    (
        "_project/list_item_type.yaml",
        (),
        "input-type",
        8,
        46,
        "takes 'lines[0].quantity' as an integer, but it is mapped to the constant 'two'",
    ),
    (
        "_project/list_item_missing.yaml",
        (),
        "input-missing",
        8,
        11,
        "needs lines[0].sku in its input",
    ),
    (
        "_project/optional_parent_to_required.yaml",
        (),
        "input-nullable",
        7,
        18,
        "needs 'reference', but data.billing_contact.email may be null",
    ),
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
        and "_config" not in path.parts
    }

    assert on_disk == {row[0] for row in CORPUS}
    assert len(CORPUS) + len(CONFIG_CORPUS) >= 60


# (project under _config/, file of the finding, code, line, column, words in the message)
CONFIG_CORPUS = [
    (
        "adapter_typo",
        "platypus.yaml",
        "unknown-adapter",
        4,
        14,
        "uses adapter 'slak', which is not installed",
    ),
    (
        "env_unset",
        "platypus.yaml",
        "env-unset",
        5,
        17,
        "${PLATYPUS_CORPUS_BILLING_URL} is not set and has no default",
    ),
]


@pytest.mark.parametrize(
    ("project", "file", "code", "line", "column", "words"),
    CONFIG_CORPUS,
    ids=[row[0] for row in CONFIG_CORPUS],
)
def test_a_mistake_in_platypus_yaml_is_reported_there_once(
    project: str, file: str, code: str, line: int, column: int, words: str
) -> None:
    root = BROKEN / "_config" / project
    result = CliRunner().invoke(flows_lint, ["--project", str(root), "--json"], env={})

    assert result.exit_code == 1, result.output
    findings = json.loads(result.output)
    assert [(f["file"], f["code"], f["line"], f["column"]) for f in findings] == [
        (str(root / file), code, line, column)
    ]
    assert words in findings[0]["message"]


def test_an_env_file_sets_what_platypus_yaml_reads(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# staging\nexport PLATYPUS_CORPUS_BILLING_URL='http://127.0.0.1:9'\n")
    root = BROKEN / "_config" / "env_unset"

    result = CliRunner().invoke(flows_lint, ["--project", str(root), "--env-file", str(env)])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no problems found"


def test_the_good_flows_raise_no_false_alarm(schemas: SchemaRegistry) -> None:
    good = Path(__file__).parent.parent / "flows_good"

    assert lint_paths([good], schemas=schemas, adapters=ADAPTERS, config=CONFIG) == []


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
