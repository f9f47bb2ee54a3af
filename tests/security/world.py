"""Two projects full of objects and one actor per role, for the authorisation, tampering and XSS tests.

Every own-project object carries OWN_MARK in a visible text field and every other-project object
OTHER_MARK, so a test can tell from a response body alone whether something leaked across a line.
Catalogue, suite, run and study rows are built with the ORM: the apps' services need real weights,
uploaded files or a generation backend, none of which is the point of an access check. Accounts
(users, memberships, tokens) go through their services.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from rest_framework.test import APIClient

from evalhub.accounts.models import ApiToken, Project, Role
from evalhub.accounts.services import membership_set, project_create, token_create, token_revoke, user_create

OWN_MARK = "ownmark"
OTHER_MARK = "othermark"
PASSWORD = "correct-horse-battery"
_ids = itertools.count(1)

# The actors of the matrix: each holds a token for one project unless it is a session or anonymous.
ROLE_ACTORS = ("admin", "lead", "engineer", "rater")
# One user with two roles, an engineer of the own project and a rater of the other, through a token
# scoped to each: the token, not the union of the user's roles, decides what they reach.
DUAL_ACTORS = ("dual_own", "dual_other")
ACTORS = (*ROLE_ACTORS, "outsider", "cross_token", "site_admin", "anonymous", "revoked", *DUAL_ACTORS)


@dataclass
class Actor:
    name: str
    user: Any = None
    secret: str = ""
    session: bool = False

    def client(self) -> APIClient:
        client = APIClient()
        if self.secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}")
        elif self.session and self.user is not None:
            client.force_login(self.user)
        return client


@dataclass
class World:
    own: Project
    other: Project
    actors: dict[str, Actor]
    users: dict[str, Any]
    marks: tuple[str, str] = (OWN_MARK, OTHER_MARK)
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    def project(self, scope: str) -> Project:
        return self.own if scope == "own" else self.other

    def mark(self, scope: str) -> str:
        """The text every object of the project carries (a plain word, or an XSS payload)."""
        return self.marks[0] if scope == "own" else self.marks[1]

    def get(self, kind: str, scope: str) -> Any:
        """The object of a kind in a project, built on first use."""
        key = (kind, scope)
        if key not in self.cache:
            with transaction.atomic():
                self.cache[key] = BUILDERS[kind](self, scope)
        return self.cache[key]


def build_world(marks: tuple[str, str] = (OWN_MARK, OTHER_MARK)) -> World:
    own = project_create(name=f"{marks[0]} project", description=f"{marks[0]} description")
    other = project_create(name=f"{marks[1]} project", description=f"{marks[1]} description")
    users: dict[str, Any] = {}
    actors: dict[str, Actor] = {}
    for role in ROLE_ACTORS:
        user = user_create(username=f"m-{role}", password=PASSWORD)
        membership_set(project=own, user=user, role=role)
        users[role] = user
        actors[role] = Actor(role, user, token_create(user=user, project=own, name=f"{marks[0]}-{role}")[1])
    outsider = user_create(username="m-outsider", password=PASSWORD)
    membership_set(project=other, user=outsider, role=Role.ENGINEER)
    users["outsider"] = outsider
    actors["outsider"] = Actor("outsider", outsider, token_create(user=outsider, project=other, name="o")[1])
    # A lead of both projects whose token is for the other one: the token, not the user, sets the scope.
    cross = user_create(username="m-cross", password=PASSWORD)
    membership_set(project=own, user=cross, role=Role.LEAD)
    membership_set(project=other, user=cross, role=Role.LEAD)
    users["cross_token"] = cross
    actors["cross_token"] = Actor("cross_token", cross, token_create(user=cross, project=other, name="x")[1])
    site_admin = user_create(username="m-site-admin", password=PASSWORD, is_superuser=True)
    users["site_admin"] = site_admin
    actors["site_admin"] = Actor("site_admin", site_admin, session=True)
    actors["anonymous"] = Actor("anonymous")
    revoked, secret = token_create(user=users["lead"], project=own, name="revoked")
    token_revoke(token=revoked)
    actors["revoked"] = Actor("revoked", users["lead"], secret)
    # An admin of the other project, for the rows of other-project memberships and tokens.
    other_admin = user_create(username="m-other-admin", password=PASSWORD)
    membership_set(project=other, user=other_admin, role=Role.ADMIN)
    users["other_admin"] = other_admin
    # The other project's rater (who holds its rater-side objects) is also an engineer of the own one.
    dual = user_create(username="m-dual", password=PASSWORD)
    membership_set(project=own, user=dual, role=Role.ENGINEER)
    membership_set(project=other, user=dual, role=Role.RATER)
    users["other_rater"] = dual
    actors["dual_own"] = Actor("dual_own", dual, token_create(user=dual, project=own, name="d-own")[1])
    actors["dual_other"] = Actor(
        "dual_other", dual, token_create(user=dual, project=other, name="d-other")[1]
    )
    users["newcomer"] = user_create(username="m-newcomer", password=PASSWORD)
    return World(own=own, other=other, actors=actors, users=users, marks=marks)


# --- builders, one per kind of object -------------------------------------------------------------


def _n() -> int:
    return next(_ids) * 7919 + 4_000_000


def build_base_model(world: World, scope: str) -> Any:
    from evalhub.catalog.models import BaseModel

    n = _n()
    return BaseModel.objects.create(
        project=world.project(scope),
        name=f"base-{world.mark(scope)}-{n}",
        folder=f"/srv/models/{world.mark(scope)}-{n}",
        weights_hash=f"{n:x}".rjust(64, "b"),
        tokenizer=f"/srv/models/{world.mark(scope)}-{n}",
    )


def build_adapter(world: World, scope: str, *, suffix: str = "") -> Any:
    from evalhub.catalog.models import Adapter

    n = _n()
    return Adapter.objects.create(
        project=world.project(scope),
        base_model=world.get("base_model", scope),
        name=f"adapter-{world.mark(scope)}{suffix}-{n}",
        version="1",
        folder=f"/srv/adapters/{world.mark(scope)}-{n}",
        weights_hash=f"{n:x}".rjust(64, "a"),
        peft_type="LORA",
        rank=8,
        alpha=16.0,
        notes=f"notes {world.mark(scope)}",
        stage=world.mark(scope)[:60],
        data_source=f"source {world.mark(scope)}",
        consent_reference=f"consent {world.mark(scope)}",
    )


def build_membership(world: World, scope: str) -> Any:
    from evalhub.accounts.models import Membership

    user = world.users["engineer"] if scope == "own" else world.users["outsider"]
    return Membership.objects.get(user=user, project=world.project(scope))


def build_token(world: World, scope: str) -> ApiToken:
    user = world.users["lead"] if scope == "own" else world.users["outsider"]
    return token_create(user=user, project=world.project(scope), name=f"ci-{world.mark(scope)}")[0]


def build_audit_event(world: World, scope: str) -> Any:
    from evalhub.audit.services import audit_record

    return audit_record(
        actor=None,
        action="test.event",
        object_type="test.thing",
        object_id=_n(),
        project=world.project(scope),
        note=f"event {world.mark(scope)}",
    )


def build_suite_version(world: World, scope: str) -> Any:
    from evalhub.suites.models import Suite, SuiteVersion

    suite = Suite.objects.create(
        project=world.project(scope),
        name=f"suite-{world.mark(scope)}-{_n()}",
        description=f"{world.mark(scope)} suite",
        data_source=f"source {world.mark(scope)}",
        consent_statement=f"consent {world.mark(scope)}",
    )
    return SuiteVersion.objects.create(suite=suite, number=1, content_hash="c" * 64, case_count=2)


def build_suite(world: World, scope: str) -> Any:
    return world.get("suite_version", scope).suite


def build_cases(world: World, scope: str) -> list[Any]:
    from evalhub.suites.models import Case

    version = world.get("suite_version", scope)
    return [
        Case.objects.create(
            version=version,
            key=f"case-{world.mark(scope)}-{i}",
            position=i,
            input=f"input {world.mark(scope)} {i}",
            reference=f"reference {world.mark(scope)} {i}",
            content_hash=f"{_n():064d}",
        )
        for i in range(2)
    ]


def build_case(world: World, scope: str) -> Any:
    return world.get("cases", scope)[0]


def build_run(world: World, scope: str) -> Any:
    from evalhub.runs.models import AdapterRole, Output, Run, RunAdapter

    n = _n()
    run = Run.objects.create(
        project=world.project(scope),
        name=f"run-{world.mark(scope)}-{n}",
        suite_version=world.get("suite_version", scope),
        base_model=world.get("base_model", scope),
        config_hash="d" * 64,
        status="completed",
    )
    baseline = world.get("adapter", scope)
    candidate = build_adapter(world, scope, suffix="-cand")
    RunAdapter.objects.create(run=run, adapter=baseline, role=AdapterRole.BASELINE)
    RunAdapter.objects.create(run=run, adapter=candidate, role=AdapterRole.CANDIDATE)
    for adapter in (baseline, candidate):
        for case in world.get("cases", scope):
            Output.objects.create(
                run=run,
                adapter=adapter,
                case=case,
                text=f"output {world.mark(scope)} {adapter.pk} {case.key}",
                finish_reason="stop",
                backend="hf",
                config_hash="e" * 64,
                cache_key=f"{_n():x}".rjust(64, "f"),
            )
    return run


def build_study(world: World, scope: str) -> Any:
    from annotation.services import consent_accept, study_create_from_run

    run = world.get("run", scope)
    study = study_create_from_run(
        run=run,
        name=f"study-{world.mark(scope)}",
        overlap=1,
        instructions=f"instructions {world.mark(scope)}",
        terms=f"terms {world.mark(scope)}",
        seed=1,
    )
    consent_accept(study=study, rater=world.users["rater"] if scope == "own" else world.users["other_rater"])
    return study


def build_task(world: World, scope: str) -> Any:
    """A task leased to the project's rater (a rater reaches only tasks leased to them)."""
    from annotation.queue import task_assign_next

    study = world.get("study", scope)
    rater = world.users["rater"] if scope == "own" else world.users["other_rater"]
    assignment = task_assign_next(study=study, rater=rater)
    assert assignment is not None, "the study has no task to lease"
    return assignment.task


def build_upload(world: World, scope: str) -> Any:
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    from evalhub.suites.services import suite_upload_stage

    mark = world.mark(scope)
    line = json.dumps({"id": "u1", "input": f"upload input {mark}", "reference": f"upload ref {mark}"})
    return suite_upload_stage(
        project=world.project(scope),
        name=f"staged {mark}",
        file=SimpleUploadedFile("cases.jsonl", line.encode() + b"\n"),
        filename="cases.jsonl",
        actor=world.users["lead"],
    )


def build_rating(world: World, scope: str) -> Any:
    """A rating of a task the rater leases for it, with the mark in its rationale.

    Build it before "task" when both are needed: the rater then holds a second, unrated task."""
    from annotation.queue import task_assign_next
    from annotation.rubric import DEFAULT_RUBRIC
    from annotation.services import rating_submit

    study = world.get("study", scope)
    rater = world.users["rater"] if scope == "own" else world.users["other_rater"]
    assignment = task_assign_next(study=study, rater=rater)
    assert assignment is not None, "the study has no task to lease"
    task = assignment.task
    rubric = study.rubric or DEFAULT_RUBRIC
    criteria = [c["key"] for c in rubric.get("criteria", DEFAULT_RUBRIC["criteria"])]
    sides = ["A", "B"] if task.output_b_id else ["A"]
    rating, _created = rating_submit(
        public_id=task.public_id,
        rater=rater,
        data={
            "scores": {c: dict.fromkeys(sides, 3) for c in criteria},
            "preference": "A" if task.output_b_id else "",
            "rationale": f"rationale {world.mark(scope)}",
        },
    )
    return rating


def build_gate_policy(world: World, scope: str) -> Any:
    from evalhub.reports.gates import DEFAULT_POLICY_YAML
    from evalhub.reports.services import gate_policy_save

    return gate_policy_save(
        project=world.project(scope), name=f"policy {world.mark(scope)}"[:120], source=DEFAULT_POLICY_YAML
    )


def build_verdict(world: World, scope: str) -> Any:
    from evalhub.reports.services import verdict_freeze

    return verdict_freeze(
        run=world.get("run", scope), policy=world.get("gate_policy", scope), actor=world.users["lead"]
    )


def build_judge_endpoint(world: World, scope: str) -> Any:
    """With the ORM: the service resolves the host, and a name is only letters, digits, . _ -."""
    from evalhub.judging.models import JudgeEndpoint

    return JudgeEndpoint.objects.create(
        project=world.project(scope),
        name=f"judge-{scope}",
        base_url="https://judge.example.com/v1",
        model=f"model {world.mark(scope)}",
        api_key=f"key-{_n()}",
    )


BUILDERS = {
    "judge_endpoint": build_judge_endpoint,
    "gate_policy": build_gate_policy,
    "verdict": build_verdict,
    "upload": build_upload,
    "rating": build_rating,
    "project": lambda world, scope: world.project(scope),
    "base_model": build_base_model,
    "adapter": build_adapter,
    "membership": build_membership,
    "token": build_token,
    "audit_event": build_audit_event,
    "suite": build_suite,
    "suite_version": build_suite_version,
    "cases": build_cases,
    "case": build_case,
    "run": build_run,
    "study": build_study,
    "task": build_task,
}
