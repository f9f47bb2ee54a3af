"""A project's HTTP judge endpoints through the API, the CLI and the admin: field-level refusals, the
webhooks' URL rule, the roles, and an API key that is stored but never shown back nor audited."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from evalhub.audit.models import AuditEvent
from evalhub.judging.models import JudgeEndpoint

pytestmark = pytest.mark.django_db

PUBLIC = "https://93.184.215.14/v1"  # an address literal: resolves without a network
SECRET = "sk-live-0123456789abcdef"


def _api(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _url(project, name: str = "") -> str:
    return f"/api/v1/projects/{project.slug}/judge-endpoints/" + (f"{name}/" if name else "")


def _body(**overrides):
    return {"name": "vllm-judge", "base_url": PUBLIC, "model": "judge-1b", "api_key": SECRET, **overrides}


def _nowhere_shown(project, *texts: str) -> None:
    audit = json.dumps(list(AuditEvent.objects.filter(project=project).values("before", "after", "note")))
    for text in texts:
        assert SECRET not in text
    assert SECRET not in audit


def test_create_read_replace_delete_and_the_key_is_never_shown_back(project, engineer):
    api = _api(engineer)
    created = api.post(
        _url(project), _body(timeout_seconds=12.5, concurrency=8, max_retries=2), format="json"
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["api_key_set"] is True and "api_key" not in data
    assert (data["timeout_seconds"], data["concurrency"], data["max_retries"], data["api"]) == (
        12.5,
        8,
        2,
        "chat",
    )
    stored = JudgeEndpoint.objects.get(project=project, name="vllm-judge")
    assert stored.api_key == SECRET and stored.base_url == PUBLIC
    listed = api.get(_url(project))
    one = api.get(_url(project, "vllm-judge"))
    assert listed.json()[0]["name"] == "vllm-judge" and one.json()["model"] == "judge-1b"
    # A replacement without api_key keeps the key; an empty one clears it.
    kept = api.put(_url(project, "vllm-judge"), {"base_url": PUBLIC, "model": "judge-2b"}, format="json")
    assert kept.status_code == 200 and kept.json()["api_key_set"] is True
    assert JudgeEndpoint.objects.get(pk=stored.pk).api_key == SECRET
    cleared = api.put(
        _url(project, "vllm-judge"), {"base_url": PUBLIC, "model": "judge-2b", "api_key": ""}, format="json"
    )
    assert cleared.json()["api_key_set"] is False
    events = AuditEvent.objects.filter(project=project, action="judge_endpoint.save").order_by("pk")
    assert [e.after["api_key_changed"] for e in events] == [True, False, True]
    _nowhere_shown(
        project,
        created.content.decode(),
        listed.content.decode(),
        one.content.decode(),
        kept.content.decode(),
    )
    assert api.delete(_url(project, "vllm-judge")).status_code == 204
    assert not JudgeEndpoint.objects.filter(pk=stored.pk).exists()
    assert api.get(_url(project, "vllm-judge")).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_url": "ftp://93.184.215.14/"}, "base_url"),
        ({"base_url": "http://127.0.0.1:8000/v1"}, "base_url"),
        ({"base_url": "http://10.1.2.3/v1"}, "base_url"),
        ({"base_url": "https://user:pw@93.184.215.14/v1"}, "base_url"),
        ({"base_url": "https://93.184.215.14/v1?key=abc"}, "base_url"),
        ({"name": "bad name/with slash"}, "name"),
        ({"model": ""}, "model"),
        ({"api": "embeddings"}, "api"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 601}, "timeout_seconds"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 65}, "concurrency"),
        ({"max_retries": 11}, "max_retries"),
        ({"api_key": "two words"}, "api_key"),
        ({"api_key": "sk-clé"}, "api_key"),
        ({"model": "judge\x00"}, "model"),
    ],
)
def test_bad_fields_are_refused_on_their_field(project, engineer, settings, overrides, field):
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = False
    answer = _api(engineer).post(_url(project), _body(**overrides), format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"], answer.json()
    assert not JudgeEndpoint.objects.exists()


def test_private_addresses_pass_once_an_admin_allows_them(project, engineer, settings):
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = True
    answer = _api(engineer).post(_url(project), _body(base_url="http://127.0.0.1:8000/v1/"), format="json")
    assert answer.status_code == 201 and answer.json()["base_url"] == "http://127.0.0.1:8000/v1"


def test_a_name_in_use_is_a_conflict_and_a_missing_one_not_found(project, engineer):
    api = _api(engineer)
    assert api.post(_url(project), _body(), format="json").status_code == 201
    again = api.post(_url(project), _body(), format="json")
    assert again.status_code == 409 and "name" in again.json()["error"]["fields"]
    assert api.put(_url(project, "ghost"), _body(), format="json").status_code == 404
    assert api.post(_url(project), ["not", "an", "object"], format="json").status_code == 400


def test_roles_raters_and_other_projects_cannot_see_or_change_endpoints(
    project, other_project, engineer, rater
):
    assert _api(engineer).post(_url(project), _body(), format="json").status_code == 201
    outsider = _api(rater)
    assert outsider.get(_url(project)).status_code == 404
    assert outsider.post(_url(project), _body(name="x"), format="json").status_code == 404
    assert outsider.delete(_url(project, "vllm-judge")).status_code == 404
    assert _api(engineer).get(_url(other_project)).status_code == 404
    assert JudgeEndpoint.objects.count() == 1


def test_the_cli_sets_lists_and_deletes_with_the_key_from_the_environment(project, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    out = io.StringIO()
    call_command(
        "judge_endpoint", "set", "cli-judge", project=project.slug, base_url=PUBLIC, model="judge-1b",
        api_key_env="JUDGE_KEY", timeout=5, concurrency=2, stdout=out,
    )  # fmt: skip
    call_command("judge_endpoint", "list", project=project.slug, stdout=out)
    printed = out.getvalue()
    assert "Saved judge endpoint cli-judge" in printed and "key set" in printed and "concurrency 2" in printed
    assert JudgeEndpoint.objects.get(name="cli-judge").api_key == SECRET
    _nowhere_shown(project, printed)
    call_command("judge_endpoint", "delete", "cli-judge", project=project.slug, stdout=out)
    assert not JudgeEndpoint.objects.exists()


def test_the_cli_refuses_bad_input_with_a_message_and_a_non_zero_exit(project, settings):
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match="base_url: Private address refused"):
        call_command(
            "judge_endpoint", "set", "j", project=project.slug, base_url="http://127.0.0.1/v1", model="m"
        )
    with pytest.raises(CommandError, match="JUDGE_KEY_MISSING is not set"):
        call_command(
            "judge_endpoint",
            "set",
            "j",
            project=project.slug,
            base_url=PUBLIC,
            model="m",
            api_key_env="JUDGE_KEY_MISSING",
        )
    with pytest.raises(CommandError, match="Unknown project"):
        call_command("judge_endpoint", "list", project="nope")
    assert not JudgeEndpoint.objects.exists()


def test_the_admin_saves_through_the_same_checks_and_never_renders_the_key(project, admin_user, settings):
    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = False
    client = Client()
    client.force_login(admin_user)
    form = {
        "project": project.pk, "name": "admin-judge", "base_url": "http://127.0.0.1/v1", "model": "m", "api": "chat",
        "timeout_seconds": "30", "concurrency": "4", "max_retries": "3", "new_api_key": SECRET,
    }  # fmt: skip
    refused = client.post("/admin/judging/judgeendpoint/add/", form)
    assert refused.status_code == 200 and "base_url" in refused.context["adminform"].form.errors
    assert "an admin can allow those with EVALHUB_JUDGE_ALLOW_PRIVATE" in refused.content.decode()
    assert not JudgeEndpoint.objects.exists()
    saved = client.post("/admin/judging/judgeendpoint/add/", {**form, "base_url": PUBLIC})
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    endpoint = JudgeEndpoint.objects.get(name="admin-judge")
    assert endpoint.api_key == SECRET
    pages = [
        client.get("/admin/judging/judgeendpoint/").content.decode(),
        client.get(f"/admin/judging/judgeendpoint/{endpoint.pk}/change/").content.decode(),
    ]
    _nowhere_shown(project, *pages)
    # Changing it with the key box empty keeps the key.
    kept = client.post(
        f"/admin/judging/judgeendpoint/{endpoint.pk}/change/",
        {**form, "base_url": PUBLIC, "model": "m2", "new_api_key": ""},
    )
    assert kept.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.model, endpoint.api_key) == ("m2", SECRET)
