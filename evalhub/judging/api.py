"""API of a project's HTTP judge endpoints: list and create, read, replace, delete one. Staff roles
read, write roles change (the webhook settings' and recipe's rule). The API key is write-only: it is
never in a response. Domain errors map to field-level 4xx in evalhub.api."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.accounts.models import Project
from evalhub.judging import endpoints
from evalhub.judging.models import JudgeApi, JudgeEndpoint
from evalhub.permissions import project_in_path


class JudgeEndpointInSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    base_url = serializers.CharField(max_length=500, help_text="http(s)://host[:port], with or without /v1.")
    model = serializers.CharField(max_length=200)
    api = serializers.ChoiceField(choices=JudgeApi.choices, default=JudgeApi.CHAT)
    api_key = serializers.CharField(
        max_length=500, required=False, allow_blank=True, write_only=True,
        help_text="Write-only: never shown back. Left out keeps the stored key; empty clears it.",
    )  # fmt: skip
    timeout_seconds = serializers.FloatField(
        default=30.0, min_value=0.001, max_value=endpoints.MAX_TIMEOUT_SECONDS
    )
    concurrency = serializers.IntegerField(default=4, min_value=1, max_value=endpoints.MAX_CONCURRENCY)
    max_retries = serializers.IntegerField(default=3, min_value=0, max_value=endpoints.MAX_RETRIES)
    constrained = serializers.BooleanField(default=False)


class JudgeEndpointOutSerializer(serializers.Serializer[Any]):
    """What a response shows of an endpoint (for the schema; the key's presence only)."""

    name = serializers.CharField()
    base_url = serializers.CharField()
    model = serializers.CharField()
    api = serializers.CharField()
    api_key_set = serializers.BooleanField()
    timeout_seconds = serializers.FloatField()
    concurrency = serializers.IntegerField()
    max_retries = serializers.IntegerField()
    constrained = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


def _save(request: Request, project: Project, *, create: bool, name: str | None = None) -> JudgeEndpoint:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["A JSON object expected."]})
    data = JudgeEndpointInSerializer(data={**request.data, **({"name": name} if name is not None else {})})
    data.is_valid(raise_exception=True)
    return endpoints.endpoint_save(project=project, create=create, actor=request.user, **data.validated_data)


class JudgeEndpointsView(APIView):
    """GET the project's judge endpoints; POST creates one (a name in use is a 409)."""

    @extend_schema(responses={200: JudgeEndpointOutSerializer(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        rows = JudgeEndpoint.objects.filter(project=project_in_path(request, slug)).order_by("name")
        return Response([endpoints.endpoint_describe(e) for e in rows])

    @extend_schema(request=JudgeEndpointInSerializer, responses={201: JudgeEndpointOutSerializer})
    def post(self, request: Request, slug: str) -> Response:
        endpoint = _save(request, project_in_path(request, slug, write=True), create=True)
        return Response(endpoints.endpoint_describe(endpoint), status=status.HTTP_201_CREATED)


class JudgeEndpointView(APIView):
    """GET one endpoint; PUT replaces it (the key is kept unless api_key is given); DELETE removes it."""

    @extend_schema(responses={200: JudgeEndpointOutSerializer})
    def get(self, request: Request, slug: str, name: str) -> Response:
        return Response(
            endpoints.endpoint_describe(
                endpoints.endpoint_get(project=project_in_path(request, slug), name=name)
            )
        )

    @extend_schema(request=JudgeEndpointInSerializer, responses={200: JudgeEndpointOutSerializer})
    def put(self, request: Request, slug: str, name: str) -> Response:
        endpoint = _save(request, project_in_path(request, slug, write=True), create=False, name=name)
        return Response(endpoints.endpoint_describe(endpoint))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, slug: str, name: str) -> Response:
        project = project_in_path(request, slug, write=True)
        endpoints.endpoint_delete(
            endpoint=endpoints.endpoint_get(project=project, name=name), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
