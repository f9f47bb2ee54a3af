"""API of continuous evaluation: a project's recipe (read, replace), approving a GO verdict's candidate,
an adapter's evaluations, and the delivery log. Domain errors map to field-level 4xx in evalhub.api."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Study
from evalhub.catalog.api import AdapterSerializer
from evalhub.continuous import recipes, selectors
from evalhub.continuous.models import BaselineRule, Delivery
from evalhub.permissions import project_in_path, projects_for
from evalhub.reports.models import GatePolicy, Verdict


class RecipeInSerializer(serializers.Serializer[Any]):
    enabled = serializers.BooleanField(default=True)
    suites = serializers.ListField(child=serializers.CharField(max_length=250), help_text='"name" or "name@N"')
    baseline_rule = serializers.ChoiceField(choices=BaselineRule.choices)
    baseline = serializers.CharField(required=False, allow_blank=True, default="")
    backend = serializers.CharField(default="hf")
    generation_config = serializers.DictField(required=False, default=dict)
    samples_per_case = serializers.IntegerField(default=1)
    open_study = serializers.BooleanField(default=False)
    study_template = serializers.CharField(required=False, allow_blank=True, help_text="public id of a study")
    study_sample_size = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    gate_policy = serializers.CharField(required=False, allow_blank=True, help_text="name of a gate policy")


class RecipeView(APIView):
    """GET the project's recipe ({} when it has none); PUT replaces it (checked first: a missing suite or
    baseline is a 400 naming the field)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        recipe = selectors.recipe_of(project=project_in_path(request, slug))
        return Response(recipes.recipe_describe(recipe) if recipe is not None else {})

    @extend_schema(request=RecipeInSerializer, responses={200: dict})
    def put(self, request: Request, slug: str) -> Response:
        project = project_in_path(request, slug, write=True)
        data = RecipeInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        template_id = values.pop("study_template", "")
        policy_name = values.pop("gate_policy", "")
        template = Study.objects.filter(project=project, public_id=template_id).first() if template_id else None
        if template_id and template is None:
            raise serializers.ValidationError({"study_template": ["No study with that id in the project."]})
        policy = GatePolicy.objects.filter(project=project, name=policy_name).first() if policy_name else None
        if policy_name and policy is None:
            raise serializers.ValidationError({"gate_policy": ["No gate policy of that name in the project."]})
        recipe = recipes.recipe_save(
            project=project, actor=request.user, study_template=template, gate_policy=policy, **values
        )
        return Response(recipes.recipe_describe(recipe))


class ApproveView(APIView):
    """Approve the candidate of a GO verdict (ML lead or admin); a NO-GO or INCONCLUSIVE verdict is a 409."""

    @extend_schema(request=None, responses={200: AdapterSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        verdict = get_object_or_404(
            Verdict.objects.select_related("candidate"),
            public_id=public_id, project__in=projects_for(user=request.user, auth=request.auth),
        )
        adapter = recipes.adapter_approve(verdict=verdict, actor=request.user, auth=request.auth)
        return Response(AdapterSerializer(adapter).data)


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    class Meta:
        model = Delivery
        fields = ["id", "event", "channel", "target", "subject", "status", "attempts", "response_status", "error",
                  "created_at", "finished_at"]
        read_only_fields = fields


class DeliveriesView(APIView):
    @extend_schema(responses={200: DeliverySerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        rows: QuerySet[Delivery] = selectors.deliveries(project=project_in_path(request, slug))[:200]
        return Response(DeliverySerializer(rows, many=True).data)
