"""API for runs: list, create (and start), read with progress and scoring state, cancel, resume, score
again, and browse outputs.

Staff roles only, scoped to the caller's projects; writes need a write role in the run's project.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from evalhub.accounts.models import Project
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.permissions import WRITE_ROLES, ProjectRolePermission, projects_for
from evalhub.runs import scoring, selectors, services
from evalhub.runs.models import Output, Run, RunAdapter, ScoringKind, ScoringStatus
from evalhub.suites.models import SuiteVersion


class ProgressSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    finished = serializers.BooleanField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()
    reused = serializers.IntegerField()
    generated = serializers.IntegerField()
    rejected = serializers.IntegerField()
    truncated = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    chunks_total = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    generation_seconds = serializers.FloatField()
    tokens_per_second = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class ScoringSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ScoringKind.choices)
    label = serializers.CharField()
    status = serializers.ChoiceField(
        choices=[*ScoringStatus.values, selectors.NOT_SCORED],
        help_text="queued, running, done, failed, or not_scored when it was never sent. The run's scores "
        "are complete when every kind is done.",
    )
    written = serializers.IntegerField(
        help_text="Score rows the last scoring pass inserted (0: all were stored)."
    )
    error = serializers.CharField(
        allow_blank=True, help_text="The exception's class and message when it failed."
    )
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class ScoreRequestSerializer(serializers.Serializer[Any]):
    force = serializers.BooleanField(
        required=False, default=False, help_text="Delete the run's scores and compute them all again."
    )


class ScoreResponseSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    scoring = ScoringSerializer(many=True)


class RunAdapterSerializer(serializers.ModelSerializer[RunAdapter]):
    adapter = serializers.CharField(source="adapter.label")
    adapter_id = serializers.IntegerField()

    class Meta:
        model = RunAdapter
        fields = ["adapter_id", "adapter", "role", "sanity"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer[Run]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    suite = serializers.CharField(source="suite_version.suite.name")
    suite_version = serializers.IntegerField(source="suite_version.number")
    base_model = serializers.CharField(source="base_model.name")
    adapters = serializers.SerializerMethodField()
    judge_adapter = serializers.SerializerMethodField(
        help_text="name@version of the judge's adapter, if any."
    )
    progress = serializers.SerializerMethodField()
    scoring = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "name",
            "suite",
            "suite_version",
            "base_model",
            "adapters",
            "backend",
            "generation_config",
            "config_hash",
            "samples_per_case",
            "force_regenerate",
            "judge_checks",
            "judge_adapter",
            "status",
            "error",
            "watchdog_note",
            "watchdog_at",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
            "scoring",
        ]
        read_only_fields = fields

    @extend_schema(responses=RunAdapterSerializer(many=True))
    def get_adapters(self, run: Run) -> list[dict[str, Any]]:
        return list(RunAdapterSerializer(selectors.run_adapters(run=run), many=True).data)

    def get_judge_adapter(self, run: Run) -> str | None:
        return run.judge_adapter.label if run.judge_adapter is not None else None

    @extend_schema(responses=ProgressSerializer)
    def get_progress(self, run: Run) -> dict[str, Any]:
        return selectors.run_progress(run=run)

    @extend_schema_field(ScoringSerializer(many=True))
    def get_scoring(self, run: Run) -> list[dict[str, Any]]:
        return list(ScoringSerializer(selectors.run_scoring(run=run), many=True).data)


class RunCreateSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    suite = serializers.CharField(help_text="Suite name in the project.")
    version = serializers.IntegerField(required=False, help_text="Suite version number; default the newest.")
    base_model = serializers.CharField(help_text="Name of a registered base model.")
    adapters = serializers.ListField(child=serializers.CharField(), help_text="name@version of each adapter.")
    baseline = serializers.CharField(required=False, help_text="name@version of the baseline adapter.")
    backend = serializers.CharField(required=False, default="hf")
    generation_config = serializers.DictField(required=False, default=dict)
    samples_per_case = serializers.IntegerField(required=False, default=1, min_value=1)
    force_regenerate = serializers.BooleanField(required=False, default=False)
    judge_checks = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Evaluate the suite's pending checks (imported model-graded assertions) with the judge.",
    )
    judge_adapter = serializers.CharField(
        required=False, help_text="name@version of the judge's adapter on the base model (default: none)."
    )
    name = serializers.CharField(required=False, allow_blank=True, default="")


class OutputSerializer(serializers.ModelSerializer[Output]):
    adapter = serializers.CharField(source="adapter.label")
    case = serializers.CharField(source="case.key")
    split = serializers.CharField(source="case.split")

    class Meta:
        model = Output
        fields = [
            "id",
            "adapter_id",
            "adapter",
            "case_id",
            "case",
            "split",
            "sample",
            "text",
            "prompt_tokens",
            "output_tokens",
            "finish_reason",
            "latency_ms",
            "backend",
            "seed",
            "config_hash",
            "cache_key",
            "truncated",
            "error",
            "reused_from",
            "created_at",
        ]
        read_only_fields = fields


def _adapter(project: Project, label: str, field: str) -> Adapter:
    adapter = adapter_by_label(project=project, label=label)
    if adapter is None:
        raise serializers.ValidationError(
            {field: [f"No adapter {label!r} in the project (use name@version)."]}
        )
    return adapter


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Run]):
    serializer_class = RunSerializer
    permission_classes = [ProjectRolePermission]
    filterset_fields = ["status", "backend"]

    def get_queryset(self) -> QuerySet[Run]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        runs = Run.objects.filter(project__in=projects).select_related(
            "project", "suite_version__suite", "base_model"
        )
        slug = self.request.query_params.get("project")
        if slug:
            runs = runs.filter(project__slug=slug)
        runs = runs.order_by("-created_at")
        # A list loads each run's adapters, progress counts and scoring states with the runs (no N+1); one
        # run read for an action (cancel, resume) must not carry counts from before the action.
        return selectors.runs_with_details(runs) if self.action == "list" else runs

    @extend_schema(
        request=RunCreateSerializer,
        responses={201: RunSerializer},
        description="Create a run and start it. Without a broker it runs to the end before the reply.",
    )
    def create(self, request: Request) -> Response:
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = (
            projects_for(user=request.user, auth=request.auth, roles=WRITE_ROLES)
            .filter(slug=values["project"])
            .first()
        )
        if project is None:
            raise serializers.ValidationError({"project": ["Unknown project, or you cannot write to it."]})
        versions = SuiteVersion.objects.filter(suite__project=project, suite__name=values["suite"])
        if values.get("version") is not None:
            versions = versions.filter(number=values["version"])
        suite_version = versions.order_by("-number").first()
        if suite_version is None:
            raise serializers.ValidationError({"suite": ["No such suite (version) in the project."]})
        base_model = BaseModel.objects.filter(project=project, name=values["base_model"]).first()
        if base_model is None:
            raise serializers.ValidationError({"base_model": ["No base model of that name in the project."]})
        run = services.run_create(
            project=project,
            suite_version=suite_version,
            base_model=base_model,
            adapters=[_adapter(project, label, "adapters") for label in values["adapters"]],
            baseline=_adapter(project, values["baseline"], "baseline") if values.get("baseline") else None,
            backend=values["backend"],
            generation_config=values["generation_config"],
            samples_per_case=values["samples_per_case"],
            force_regenerate=values["force_regenerate"],
            judge_checks=values["judge_checks"],
            judge_adapter=(
                _adapter(project, values["judge_adapter"], "judge_adapter")
                if values.get("judge_adapter")
                else None
            ),
            name=values["name"],
            actor=request.user,
        )
        run = services.run_start(run=run, actor=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ProgressSerializer)
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, pk: str | None = None) -> Response:
        return Response(selectors.run_progress(run=self.get_object()))

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = services.run_cancel(run=self.get_object(), actor=request.user)
        return Response(RunSerializer(run).data)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        run = services.run_resume(run=self.get_object(), actor=request.user)
        return Response(RunSerializer(run).data)

    @extend_schema(
        request=ScoreRequestSerializer,
        responses={202: ScoreResponseSerializer},
        description="Score a completed run again: the scores it lacks, or all of them with force. 409 if the "
        "run has not completed. Without a broker the scoring runs before the reply; a failure is a failed "
        "state with its error, not an error response.",
    )
    @action(detail=True, methods=["post"])
    def score(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        data = ScoreRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scoring.run_rescore(run=run, force=data.validated_data["force"], actor=request.user)
        states = ScoringSerializer(selectors.run_scoring(run=run), many=True).data
        return Response({"id": run.pk, "scoring": states}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter("adapter", str, description="Adapter id or name@version."),
            OpenApiParameter("case", str, description="Case key."),
            OpenApiParameter("split", str, description="eval or heldout."),
        ],
        responses=OutputSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def outputs(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        adapter = None
        if request.query_params.get("adapter"):
            value = request.query_params["adapter"]
            adapters = Adapter.objects.filter(run_adapters__run=run)
            adapter = (
                get_object_or_404(adapters, pk=value)
                if value.isdigit()
                else _adapter(run.project, value, "adapter")
            )
        case = None
        if request.query_params.get("case"):
            case = get_object_or_404(run.suite_version.cases.all(), key=request.query_params["case"])
        outputs = selectors.output_list(
            run=run, adapter=adapter, case=case, split=request.query_params.get("split") or None
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(outputs, request, view=self)
        return paginator.get_paginated_response(OutputSerializer(page, many=True).data)
