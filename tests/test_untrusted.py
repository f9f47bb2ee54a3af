"""Reading untrusted text: YAML bounded in nodes (gate policies included), strict JSON, unstorable values."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from evalhub.errors import ValidationFailed
from evalhub.reports.gates import policy_parse
from evalhub.reports.models import GatePolicy
from evalhub.untrusted import YamlTooLarge, display, json_loads, printable, unstorable, yaml_load

# 405 bytes that expand to 9**9 (387 million) strings: the outside test's gate-policy body.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_after_the_node_cap_in_well_under_a_second() -> None:
    started = time.perf_counter()
    with pytest.raises(YamlTooLarge, match="more than 10,000 values once its aliases are expanded"):
        yaml_load(BOMB, max_nodes=10_000)
    assert time.perf_counter() - started < 1.0


def test_aliases_under_the_cap_are_expanded() -> None:
    assert yaml_load("a: &x [1, 2]\nb: *x\n", max_nodes=10) == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(YamlTooLarge):
        yaml_load("a: &x [1, 2, 3, 4]\nb: *x\nc: *x\n", max_nodes=12)


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(YamlTooLarge, match="refers to itself"):
        yaml_load("a: &a [1, *a]\n", max_nodes=100)


def test_yaml_gives_only_json_values() -> None:
    assert yaml_load("d: 2024-01-02\n", max_nodes=10) == {"d": "2024-01-02"}
    for source in ("a: !!binary aGVsbG8=\n", "a: !!set {x}\n", "a: " + "1" * 5000 + "\n"):
        with pytest.raises(yaml.YAMLError):
            yaml_load(source, max_nodes=10)


def test_a_gate_policy_alias_bomb_is_refused_and_nothing_is_stored(lead: Any, project: Any) -> None:
    with pytest.raises(ValidationFailed, match="once its aliases are expanded"):
        policy_parse(BOMB + "gates: *i\n")
    client = APIClient()
    client.force_authenticate(lead)
    response = client.post(
        "/api/v1/gate-policies",
        {"project": project.slug, "name": "bomb", "source": BOMB + "gates: *i\n"},
        format="json",
    )
    assert response.status_code == 400 and "aliases are expanded" in response.json()["error"]["message"]
    assert not GatePolicy.objects.filter(name="bomb").exists()
    assert len(response.content) < 2000


def test_a_gate_policy_with_a_nul_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="NUL"):
        policy_parse('name: "a\\0b"\ngates:\n  - metric: win_rate_lower\n    threshold: 0.5\n')


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ('{"cases": [{"input": "x"}, {"input": "a\\u0000b"}]}', "cases[1].input", "NUL character"),
        ('{"cases": [{"slices": {"\\ud800": 1}}]}', "cases[0].slices.\\ud800", "unpaired surrogate"),
        ('{"n": ' + "9" * 5000 + "}", "n", "more than 4,300 digits"),
        ('{"n": [NaN]}', "n[0]", "NaN"),
        ('{"n": 1e999}', "n", "not finite"),
    ],
)
def test_unstorable_values_are_found_with_their_place(text: str, where: str, reason: str) -> None:
    found = unstorable(json_loads(text))
    assert found is not None and found[0] == where and reason in found[1]


def test_storable_json_passes_and_unsafe_text_prints_as_escapes() -> None:
    assert unstorable(json_loads('{"a": [1, 2.5, "é", null, true, {"b": "\\u00e9"}]}')) is None
    assert printable("a\x00b\ud800") == "a\\u0000b\\ud800"
    assert display(json_loads('{"n": ' + "9" * 5000 + "}")).startswith('{"n": "<has a number')


@pytest.mark.parametrize(
    "body",
    [
        b'{"project": "p", "name": "a\\u0000b", "cases": []}',
        b'{"project": "p", "name": "x", "cases": [{"input": "\\ud800"}]}',
        b'{"project": "p", "name": "x", "cases": [{"input": ' + b"9" * 5000 + b"}]}",
        b'{"project": "p", "name": "x", "cases": [{"input": NaN}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_the_api_json_parser_answers_400_naming_the_field(engineer: Any, project: Any, body: bytes) -> None:
    client = APIClient()
    client.force_authenticate(engineer)
    response = client.generic("POST", "/api/v1/suites/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["fields"] or "nested too deeply" in error["message"]
    if error["fields"]:
        (where,) = error["fields"]
        assert where.startswith(("name", "cases[0].input"))
