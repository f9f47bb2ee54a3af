"""API for reports: a run's report as JSON (the same document as the JSON export), gate policies,
and verdicts (freeze, retrieve, reopen). Staff roles only, scoped to the caller's projects."""

from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.errors import Conflict
from evalhub.permissions import WRITE_ROLES, projects_for
from evalhub.reports import gates, selectors, services
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.runs.models import Run


def _projects(request: Request, *, write: bool = False) -> QuerySet[Any]:
    if write:
        return projects_for(user=request.user, auth=request.auth, roles=WRITE_ROLES)
    return projects_for(user=request.user, auth=request.auth)


def _run(request: Request, run_id: int, *, write: bool = False) -> Run:
    return get_object_or_404(
        Run.objects.select_related("project"), pk=run_id, project__in=_projects(request, write=write)
    )


def _adapters(run: Run, data: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for role in ("candidate", "baseline"):
        if data.get(role):
            params[role] = selectors.adapter_in_run(run=run, label=str(data[role]))
    if data.get("exclude_below") not in (None, ""):
        try:
            params["exclude_raters_below"] = float(data["exclude_below"])
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError({"exclude_below": ["A number between 0 and 1."]}) from exc
    params.update(
        services.rater_quality_params(
            exclude_flagged=data.get("exclude_flagged"), min_seconds=data.get("min_seconds")
        )
    )
    return params


REPORT_PARAMS = [
    OpenApiParameter("candidate", str, description="name@version; default the run's first candidate"),
    OpenApiParameter("baseline", str, description="name@version; default the run's baseline"),
    OpenApiParameter(
        "policy", str, description="gate policy name; default the project's newest, else the default"
    ),
    OpenApiParameter("exclude_below", float, description="exclude raters whose gold accuracy is below this"),
    OpenApiParameter("exclude_flagged", bool, description="exclude raters that rater quality flags"),
    OpenApiParameter("min_seconds", float, description="a rating faster than this is too fast (default 5)"),
]


class RunReportView(APIView):
    @extend_schema(
        parameters=REPORT_PARAMS,
        responses={200: dict},
        description="The report and its verdict (not frozen).",
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = _run(request, run_id)
        report = services.report_cached(run=run, **_adapters(run, request.query_params))
        stored = selectors.policy_for_run(run=run, name=request.query_params.get("policy") or None)
        policy = stored.parsed if stored else gates.default_policy()
        return Response(
            {
                "report": report.to_dict(),
                "verdict": services.report_with_verdict(report=report, policy=policy),
            }
        )


class GatePolicySerializer(serializers.ModelSerializer[GatePolicy]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = GatePolicy
        fields = ["id", "project", "name", "source", "parsed", "created_at", "updated_at"]
        read_only_fields = fields


class GatePolicyIn(serializers.Serializer[Any]):
    project = serializers.SlugField()
    name = serializers.CharField(max_length=120)
    source = serializers.CharField(help_text="The policy as YAML.")


class GatePolicyListView(APIView):
    @extend_schema(responses=GatePolicySerializer(many=True))
    def get(self, request: Request) -> Response:
        policies = (
            GatePolicy.objects.filter(project__in=_projects(request))
            .select_related("project")
            .order_by("name")
        )
        return Response(GatePolicySerializer(policies, many=True).data)

    @extend_schema(request=GatePolicyIn, responses={201: GatePolicySerializer})
    def post(self, request: Request) -> Response:
        data = GatePolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        project = _projects(request, write=True).filter(slug=data.validated_data["project"]).first()
        if project is None:
            raise serializers.ValidationError({"project": ["Unknown project, or you cannot write to it."]})
        policy = services.gate_policy_save(
            project=project,
            name=data.validated_data["name"],
            source=data.validated_data["source"],
            actor=request.user,
        )
        return Response(GatePolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class GateMetricsView(APIView):
    @extend_schema(
        responses={200: dict},
        description="What each gate metric and gate field means, and the default policy's YAML.",
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "metrics": [
                    {
                        "metric": metric,
                        "meaning": text,
                        "default_use": {**gates.SIMPLE_METRICS, **gates.PREFIXED_METRICS}[
                            metric.partition(":")[0]
                        ],
                    }
                    for metric, text in gates.METRIC_HELP.items()
                ],
                "fields": gates.FIELD_HELP,
                "default_policy": gates.DEFAULT_POLICY_YAML,
            }
        )


class GatePolicyDetailView(APIView):
    def _get(self, request: Request, pk: int, *, write: bool = False) -> GatePolicy:
        return get_object_or_404(
            GatePolicy.objects.select_related("project"), pk=pk, project__in=_projects(request, write=write)
        )

    @extend_schema(responses=GatePolicySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(GatePolicySerializer(self._get(request, pk)).data)

    @extend_schema(request=GatePolicyIn, responses=GatePolicySerializer)
    def put(self, request: Request, pk: int) -> Response:
        policy = self._get(request, pk, write=True)
        source = request.data.get("source")
        if not isinstance(source, str):
            raise serializers.ValidationError({"source": ["The policy as YAML."]})
        policy = services.gate_policy_save(
            project=policy.project, name=policy.name, source=source, actor=request.user
        )
        return Response(GatePolicySerializer(policy).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        policy = self._get(request, pk, write=True)
        try:
            policy.delete()
        except ProtectedError as exc:
            raise Conflict("Frozen verdicts use this policy; it cannot be deleted.") from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerdictSerializer(serializers.ModelSerializer[Verdict]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    candidate = serializers.CharField(source="candidate.label")
    baseline = serializers.CharField(source="baseline.label", allow_null=True)
    policy = serializers.CharField(source="policy.name")
    frozen_by = serializers.CharField(source="frozen_by.username", allow_null=True, default=None)
    why = serializers.CharField(read_only=True, help_text="One sentence naming the deciding gates.")

    class Meta:
        model = Verdict
        fields = [
            "public_id",
            "project",
            "run",
            "candidate",
            "baseline",
            "policy",
            "decision",
            "why",
            "gates",
            "content_hash",
            "frozen_by",
            "frozen_at",
        ]
        read_only_fields = fields


class VerdictIn(serializers.Serializer[Any]):
    run = serializers.IntegerField()
    candidate = serializers.CharField(required=False)
    baseline = serializers.CharField(required=False)
    policy = serializers.CharField(required=False)
    exclude_below = serializers.FloatField(required=False, min_value=0, max_value=1)
    exclude_flagged = serializers.BooleanField(required=False)
    min_seconds = serializers.FloatField(required=False, min_value=0, max_value=3600)


class VerdictCreateView(APIView):
    @extend_schema(
        request=VerdictIn, responses={201: VerdictSerializer}, description="Freeze a verdict on a run."
    )
    def post(self, request: Request) -> Response:
        data = VerdictIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = _run(request, values["run"], write=True)
        policy = selectors.policy_for_run(run=run, name=values.get("policy"))
        verdict = services.verdict_freeze(
            run=run, policy=policy, actor=request.user, **_adapters(run, values)
        )
        return Response(VerdictSerializer(verdict).data, status=status.HTTP_201_CREATED)


class VerdictDetailView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("reopen", bool, description="recompute from the snapshot and check the hash")
        ],
        responses=VerdictSerializer,
    )
    def get(self, request: Request, public_id: str) -> Response:
        verdict = selectors.verdict_get(public_id=public_id, projects=_projects(request))
        body = dict(VerdictSerializer(verdict).data)
        body["report"] = verdict.snapshot.get("report")
        if request.query_params.get("reopen") in ("1", "true"):
            body["reopened"] = services.verdict_reopen(verdict).to_dict()
        return Response(body)
