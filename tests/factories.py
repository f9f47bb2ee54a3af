"""factory_boy factories for the evaluation object graph, shared by the tests' builders and the benchmarks.

One factory per model, holding the placeholder values every builder used to repeat (weights and
config hashes, the LoRA shape, a completed run, a submitted assignment). Builders pass what their
test is about and take the rest from here. `Factory(...)` saves a row; `Factory.build(...)` makes
an unsaved instance for `bulk_create`, which the large builders (reports, bench/report.py) need.
Users and projects come from their services (`user_create`, `project_create`), not from factories:
those services hash passwords and make slugs, and tests should get exactly what users get.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from annotation.models import Assignment, AssignmentStatus, Rating, Study, Task
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.runs.models import AdapterRole, MetricScore, Output, Run, RunAdapter
from evalhub.suites.models import Case, Suite, SuiteVersion


class BaseModelFactory(DjangoModelFactory[BaseModel]):
    class Meta:
        model = BaseModel

    project: Any = None  # always given: the project under test
    name = factory.Sequence(lambda n: f"base-{n}")
    folder = "/srv/b"
    weights_hash = "b" * 64
    tokenizer = factory.SelfAttribute("folder")


class AdapterFactory(DjangoModelFactory[Adapter]):
    class Meta:
        model = Adapter

    base_model = factory.SubFactory(BaseModelFactory)
    project = factory.SelfAttribute("base_model.project")
    name = factory.Sequence(lambda n: f"adapter-{n}")
    version = "1"
    folder = factory.LazyAttribute(lambda o: f"/srv/{o.name}")
    weights_hash = "a" * 64
    peft_type = "LORA"
    rank = 8
    alpha = 16.0


class SuiteFactory(DjangoModelFactory[Suite]):
    class Meta:
        model = Suite
        django_get_or_create = ("project", "name")  # a suite name is unique in its project

    project: Any = None
    name = factory.Sequence(lambda n: f"suite-{n}")


class SuiteVersionFactory(DjangoModelFactory[SuiteVersion]):
    class Meta:
        model = SuiteVersion

    suite = factory.SubFactory(SuiteFactory)
    number = 1
    content_hash = "c" * 64


class CaseFactory(DjangoModelFactory[Case]):
    class Meta:
        model = Case

    version = factory.SubFactory(SuiteVersionFactory)
    position = factory.Sequence(lambda n: n)
    key = factory.LazyAttribute(lambda o: f"case-{o.position}")
    input = factory.LazyAttribute(lambda o: f"Input {o.position}")
    reference = factory.LazyAttribute(lambda o: f"Reference {o.position}")
    content_hash = factory.LazyAttribute(lambda o: f"{o.position:064d}")


def text_hash(text: str) -> str:
    """The content hash an imported case would carry (for builders whose cases must look imported)."""
    return hashlib.sha256(text.encode()).hexdigest()


class RunFactory(DjangoModelFactory[Run]):
    class Meta:
        model = Run

    suite_version = factory.SubFactory(SuiteVersionFactory)
    project = factory.SelfAttribute("suite_version.suite.project")
    base_model = factory.SubFactory(BaseModelFactory, project=factory.SelfAttribute("..project"))
    name = factory.Sequence(lambda n: f"run-{n}")
    config_hash = "d" * 64
    status = "completed"


class RunAdapterFactory(DjangoModelFactory[RunAdapter]):
    class Meta:
        model = RunAdapter

    run = factory.SubFactory(RunFactory)
    adapter = factory.SubFactory(AdapterFactory)
    role = AdapterRole.CANDIDATE


class OutputFactory(DjangoModelFactory[Output]):
    class Meta:
        model = Output

    run = factory.SubFactory(RunFactory)
    adapter = factory.SubFactory(AdapterFactory)
    case = factory.SubFactory(CaseFactory)
    text = "An output."
    finish_reason = "stop"
    backend = "hf"
    config_hash = "e" * 64
    cache_key = factory.Sequence(lambda n: f"output-{n}")


class MetricScoreFactory(DjangoModelFactory[MetricScore]):
    class Meta:
        model = MetricScore

    output = factory.SubFactory(OutputFactory)
    run = factory.SelfAttribute("output.run")
    adapter = factory.SelfAttribute("output.adapter")
    case = factory.SelfAttribute("output.case")
    metric = "rougeL"
    metric_version = "1"
    config_hash = "f" * 64


class StudyFactory(DjangoModelFactory[Study]):
    class Meta:
        model = Study

    run = factory.SubFactory(RunFactory)
    project = factory.SelfAttribute("run.project")
    name = factory.Sequence(lambda n: f"study-{n}")


class TaskFactory(DjangoModelFactory[Task]):
    class Meta:
        model = Task

    study = factory.SubFactory(StudyFactory)
    order_key = factory.Sequence(lambda n: f"{n:08d}")


class AssignmentFactory(DjangoModelFactory[Assignment]):
    """A submitted assignment: leased, finished now, within a 15-minute lease."""

    class Meta:
        model = Assignment

    task = factory.SubFactory(TaskFactory)
    study = factory.SelfAttribute("task.study")
    status = AssignmentStatus.SUBMITTED
    leased_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.leased_at + timedelta(minutes=15))
    finished_at = factory.SelfAttribute("leased_at")


class RatingFactory(DjangoModelFactory[Rating]):
    class Meta:
        model = Rating

    assignment = factory.SubFactory(AssignmentFactory)
    task = factory.SelfAttribute("assignment.task")
    rater = factory.SelfAttribute("assignment.rater")
    time_on_task_ms = 20000
