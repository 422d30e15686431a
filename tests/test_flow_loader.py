"""Loading flow files: validated flows, or every error with its file:line:column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from platypus.exceptions import FieldError, FlowLoadError, SourceLocation
from platypus.flow import load_flow, load_flows
from platypus.flow._yaml import parse_yaml
from platypus.flow.loader import flow_files, load_flow_with_locations, read_flow_file

HERE = Path(__file__).parent
GOOD = HERE / "flows_good"
BROKEN = HERE / "flows_broken"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[FieldError]:
    with pytest.raises(FlowLoadError) as caught:
        load_flow(path)
    assert caught.value.file == str(path)
    return caught.value.errors


def at(path: Path, line: int, column: int) -> SourceLocation:
    return SourceLocation(str(path), line, column)


# -- good flows ----------------------------------------------------------------------


def test_good_flow_loads_with_its_source_file_and_content_hash_as_version() -> None:
    path = GOOD / "closed_won_to_billing.yaml"

    flow = load_flow(path)

    assert flow.name == "closed-won-to-billing"
    assert flow.source_file == str(path)
    assert flow.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert [step.name for step in flow.steps] == ["create_order", "notify"]
    assert flow.steps[0].payload["amount"].source == "data.amount"
    assert flow.steps[0].payload["priority"] == 1
    assert "version" not in flow.model_dump()


def test_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    text = (GOOD / "closed_won_to_billing.yaml").read_text()
    first = load_flow(write(tmp_path, "a.yaml", text))
    second = load_flow(write(tmp_path, "b.yaml", text + "# a comment\n"))

    assert first.version != second.version
    assert len(first.version) == 12


def test_consumes_may_be_a_single_type() -> None:
    flow = load_flow(GOOD / "sales" / "worker_hired.yml")

    assert flow.consumes == ["people.worker.hired.v1"]


def test_load_flow_with_locations_gives_node_positions() -> None:
    path = GOOD / "closed_won_to_billing.yaml"

    flow, locations = load_flow_with_locations(path)

    assert flow.name == "closed-won-to-billing"
    assert locations.value(("steps", 0, "to")) == at(path, 9, 9)
    assert locations.key(("steps", 0, "payload", "amount")) == at(path, 13, 7)
    assert locations.value(("steps", 0, "payload", "amount")) == at(path, 13, 15)
    # A path below what exists falls back to the deepest node that does.
    assert locations.value(("steps", 0, "params", "headers")) == at(path, 10, 13)


# -- broken flows, one problem each ------------------------------------------------------


def test_yaml_syntax_error_is_located_at_the_problem_mark() -> None:
    path = BROKEN / "syntax_error.yaml"

    (error,) = errors_of(path)

    assert error.location == at(path, 3, 6)
    assert error.message.startswith("invalid YAML: while parsing a flow sequence")
    assert "starts at line 2" in error.message


def test_duplicate_key_is_an_error_at_the_second_key() -> None:
    path = BROKEN / "duplicate_key.yaml"

    (error,) = errors_of(path)

    assert error.location == at(path, 8, 5)
    assert error.path == "steps[0].payload"
    assert "duplicate key 'payload' (first at line 6)" in error.message


def test_typo_in_a_key_suggests_the_right_one_at_the_key() -> None:
    path = BROKEN / "typo_key.yaml"

    (error,) = errors_of(path)

    assert error.path == "steps[1].payloda"
    assert error.message == "unknown key 'payloda'; did you mean 'payload'?"
    assert error.location == at(path, 8, 5)


def test_unknown_key_without_a_close_match_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        "name: f\nconsumes: [a.v1]\nretry: {zzz: 1}\nsteps: [{name: a, to: sink.send}]\n",
    )

    (error,) = errors_of(path)

    assert error.location == at(path, 3, 9)
    assert error.message.startswith("unknown key 'zzz' (allowed: max_attempts, initial_delay")


def test_bad_target_is_located_at_the_value() -> None:
    path = BROKEN / "bad_target.yaml"

    (error,) = errors_of(path)

    assert error.path == "steps[1].to"
    assert error.location == at(path, 7, 9)
    assert "'Billing/post' is not connection.action" in error.message


def test_expression_syntax_errors_are_located_at_their_scalars() -> None:
    path = BROKEN / "bad_expression.yaml"

    when, line = errors_of(path)

    assert when.path == "when"
    assert when.location == at(path, 3, 7)
    assert when.message.startswith("invalid expression 'data.amount >'")
    assert line.path == "steps[0].payload.lines[0]"
    assert line.location == at(path, 10, 11)
    assert "invalid expression 'data.line_items[*].('" in line.message


def test_every_bad_expression_of_a_payload_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        "name: f\n"
        "consumes: [a.v1]\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
        "    payload:\n"
        "      one: data.(\n"
        "      fine: data.x\n"
        "      two: 'a..b'\n",
    )

    errors = errors_of(path)

    assert [(e.path, e.location) for e in errors] == [
        ("steps[0].payload.one", at(path, 7, 12)),
        ("steps[0].payload.two", at(path, 9, 12)),
    ]


def test_missing_required_steps_points_at_the_flow() -> None:
    path = BROKEN / "missing_steps.yaml"

    (error,) = errors_of(path)

    assert error.path == "steps"
    assert error.message == "missing required key 'steps'"
    assert error.location == at(path, 1, 1)


def test_all_errors_of_a_file_are_reported_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        "name: Not A Name\n"
        "consumes: []\n"
        "on_error: never\n"
        "steps:\n"
        "  - name: a\n"
        "    to: nowhere\n"
        "    retry: {max_attempts: many}\n",
    )

    errors = errors_of(path)

    assert [(e.path, e.location.line if e.location else 0) for e in errors] == [
        ("name", 1),
        ("consumes", 2),
        ("on_error", 3),
        ("steps[0].to", 6),
        ("steps[0].retry.max_attempts", 7),
    ]
    assert errors[0].message.startswith("invalid name 'Not A Name': use lower-case letters")
    assert errors[1].message.startswith("consumes must name at least one event type")
    assert errors[2].message == "Input should be 'dead_letter' or 'discard', got 'never'"
    assert errors[4].message.endswith("got 'many'")


def test_duplicate_step_name_is_located_at_the_second_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "flow.yaml",
        "name: f\n"
        "consumes: [a.v1]\n"
        "steps:\n"
        "  - name: a\n"
        "    to: sink.send\n"
        "  - name: a\n"
        "    to: sink.send\n",
    )

    (error,) = errors_of(path)

    assert error.path == "steps[1].name"
    assert error.location == at(path, 6, 11)
    assert "step name 'a' is used twice" in error.message


@pytest.mark.parametrize(
    ("text", "found"),
    [("", "the file is empty"), ("- a\n- b\n", "found a list"), ("just text\n", "found a string")],
)
def test_a_flow_file_must_hold_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    path = write(tmp_path, "flow.yaml", text)

    (error,) = errors_of(path)

    assert error.message.endswith(found)
    assert error.location == at(path, 1, 1)


def test_flow_load_error_message_names_file_line_and_column() -> None:
    path = BROKEN / "typo_key.yaml"

    with pytest.raises(FlowLoadError) as caught:
        load_flow(path)

    assert str(caught.value) == (
        f"{path}:8:5: steps[1].payloda: unknown key 'payloda'; did you mean 'payload'?"
    )


def test_unreadable_file_is_a_load_error(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path / "missing.yaml")

    assert error.message.startswith("cannot read the file")


def test_read_flow_file_gives_codes_without_raising() -> None:
    flow = read_flow_file(BROKEN / "bad_expression.yaml")

    assert flow.spec is None
    assert [p.code for p in flow.problems] == ["expression-syntax", "expression-syntax"]


# -- folders -------------------------------------------------------------------------


def test_load_flows_reads_the_folder_recursively_and_skips_tests_and_drafts() -> None:
    flows = load_flows(GOOD)

    assert [flow.name for flow in flows] == [
        "closed-won-to-billing",
        "worker-hired-to-sink",
        "deal-to-account",
        "deal-to-chat",
        "leaver-to-chat",
    ]
    assert flows[1].source_file == str(GOOD / "sales" / "worker_hired.yml")


def test_flow_files_skips_hidden_and_underscore_folders_and_test_files(tmp_path: Path) -> None:
    for name in (
        "b.yaml",
        "a.yml",
        "sub/c.yaml",
        "b.test.yaml",
        "b.tests.yaml",
        "b.test.yml",
        ".hidden.yaml",
        ".git/x.yaml",
        "_drafts/d.yaml",
        "notes.txt",
    ):
        write(tmp_path, name, "")

    found = [p.relative_to(tmp_path).as_posix() for p in flow_files(tmp_path)]

    assert found == ["a.yml", "b.yaml", "sub/c.yaml"]


def test_load_flows_reports_errors_of_every_file_and_duplicate_names() -> None:
    with pytest.raises(FlowLoadError) as caught:
        load_flows(BROKEN)

    assert caught.value.file == str(BROKEN)
    located = [
        (Path(e.location.file).name, e.location.line) for e in caught.value.errors if e.location
    ]
    assert located == [
        ("bad_expression.yaml", 3),
        ("bad_expression.yaml", 10),
        ("bad_target.yaml", 7),
        ("duplicate_key.yaml", 8),
        ("missing_steps.yaml", 1),
        ("syntax_error.yaml", 3),
        ("typo_key.yaml", 8),
        ("same_name_again.yaml", 1),
    ]
    duplicate = caught.value.errors[-1]
    assert duplicate.message == (
        f"flow name 'unique-one' is already used by {BROKEN / 'same_name.yaml'}:2:7; "
        "flow names must be unique across the project"
    )


def test_load_flows_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="is not a folder of flow files"):
        load_flows(tmp_path / "nowhere")


def test_load_flows_of_an_empty_folder_is_no_flows(tmp_path: Path) -> None:
    assert load_flows(tmp_path) == []


# -- the YAML layer ------------------------------------------------------------------


def test_yaml_keys_are_kept_as_written() -> None:
    parsed = parse_yaml("on: yes\n1: one\nnull: ~\n", "f.yaml")

    assert parsed.value == {"on": True, "1": "one", "null": None}


def test_yaml_merge_keys_are_not_duplicates_and_own_keys_win() -> None:
    text = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  x: 3\n"

    parsed = parse_yaml(text, "f.yaml")

    assert parsed.problems == []
    assert parsed.value["thing"] == {"x": 3, "y": 2}
    assert parsed.locations.value(("thing", "x")) == SourceLocation("f.yaml", 4, 6)
    assert parsed.locations.value(("thing", "y")) == SourceLocation("f.yaml", 1, 20)


def test_yaml_aliases_are_expanded() -> None:
    parsed = parse_yaml("a: &a [1, 2]\nb: *a\n", "f.yaml")

    assert parsed.value == {"a": [1, 2], "b": [1, 2]}
    assert parsed.problems == []


def test_yaml_recursive_alias_is_refused() -> None:
    parsed = parse_yaml("a: &x [*x]\n", "f.yaml")

    assert [p.code for p in parsed.problems] == ["yaml-unsupported"]


@pytest.mark.parametrize(
    "text", ["a: !!python/object/apply:os.system [echo]\n", "a: !!set {x}\n", "a: !custom 1\n"]
)
def test_yaml_unsafe_or_custom_tags_are_refused_with_a_location(text: str) -> None:
    parsed = parse_yaml(text, "f.yaml")

    (problem,) = parsed.problems
    assert problem.code == "yaml-unsupported"
    assert problem.error.location == SourceLocation("f.yaml", 1, 4)


def test_yaml_complex_keys_are_refused() -> None:
    parsed = parse_yaml("? [a, b]\n: 1\n", "f.yaml")

    assert [p.error.message for p in parsed.problems] == ["a mapping key must be a plain scalar"]


def test_duplicate_key_keeps_the_last_value_and_its_location() -> None:
    parsed = parse_yaml("a:\n  x: 1\na: 2\n", "f.yaml")

    assert parsed.value == {"a": 2}
    assert ("a", "x") not in parsed.locations
    assert parsed.locations.value(("a",)) == SourceLocation("f.yaml", 3, 4)
