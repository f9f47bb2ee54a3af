"""API for base models and adapters: list, read, register (POST) and change an adapter's status."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from evalhub.catalog import services
from evalhub.catalog.models import Adapter, AdapterStatus, BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.permissions import ProjectRolePermission, projects_for, writable_project


class BaseModelSerializer(serializers.ModelSerializer[BaseModel]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = BaseModel
        fields = [
            "id",
            "project",
            "name",
            "folder",
            "architecture",
            "model_type",
            "weights_hash",
            "dtype",
            "tokenizer",
            "parameters",
            "created_at",
        ]
        read_only_fields = fields


class BaseModelRegisterSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    name = serializers.CharField(max_length=200)
    folder = serializers.CharField(max_length=500)


class AdapterSerializer(serializers.ModelSerializer[Adapter]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    base_model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    parent = serializers.StringRelatedField()

    class Meta:
        model = Adapter
        fields = [
            "id",
            "project",
            "base_model",
            "name",
            "version",
            "folder",
            "weights_hash",
            "peft_type",
            "rank",
            "alpha",
            "target_modules",
            "base_quantization",
            "parent",
            "stage",
            "train_examples",
            "synthetic_share",
            "data_source",
            "consent_reference",
            "status",
            "notes",
            "created_at",
        ]
        read_only_fields = fields


class AdapterRegisterSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    base_model = serializers.CharField(help_text="Name of a registered base model in the project.")
    folder = serializers.CharField(max_length=500)
    name = serializers.CharField(max_length=200, required=False)
    version = serializers.CharField(max_length=40, required=False)
    parent = serializers.CharField(required=False, help_text="name@version of the parent adapter.")
    stage = serializers.CharField(max_length=60, required=False, allow_blank=True)
    train_examples = serializers.IntegerField(required=False, min_value=0)
    synthetic_share = serializers.FloatField(required=False, min_value=0, max_value=1)
    data_source = serializers.CharField(max_length=300, required=False, allow_blank=True)
    consent_reference = serializers.CharField(max_length=300, required=False, allow_blank=True)
    notes = serializers.CharField(required=False, allow_blank=True)


class AdapterStatusSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=AdapterStatus.choices)
    note = serializers.CharField(required=False, allow_blank=True)


class BaseModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[BaseModel]):
    serializer_class = BaseModelSerializer
    permission_classes = [ProjectRolePermission]
    filterset_fields = ["name"]

    def get_queryset(self) -> QuerySet[BaseModel]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        return BaseModel.objects.filter(project__in=projects).select_related("project").order_by("name")

    @extend_schema(request=BaseModelRegisterSerializer, responses={201: BaseModelSerializer})
    def create(self, request: Request) -> Response:
        data = BaseModelRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = writable_project(request, data.validated_data["project"])
        model = services.base_model_register(
            project=project,
            name=data.validated_data["name"],
            folder=data.validated_data["folder"],
            actor=request.user,
        )
        return Response(BaseModelSerializer(model).data, status=status.HTTP_201_CREATED)


class AdapterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Adapter]):
    serializer_class = AdapterSerializer
    permission_classes = [ProjectRolePermission]
    filterset_fields = ["name", "version", "status", "stage"]

    def get_queryset(self) -> QuerySet[Adapter]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        return (
            Adapter.objects.filter(project__in=projects)
            .select_related("project", "base_model", "parent")
            .order_by("name", "created_at")
        )

    @extend_schema(request=AdapterRegisterSerializer, responses={201: AdapterSerializer})
    def create(self, request: Request) -> Response:
        data = AdapterRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = writable_project(request, values.pop("project"))
        base_model = BaseModel.objects.filter(project=project, name=values.pop("base_model")).first()
        if base_model is None:
            raise serializers.ValidationError({"base_model": ["No base model of that name in the project."]})
        parent = None
        if values.get("parent"):
            parent = adapter_by_label(project=project, label=values.pop("parent"))
            if parent is None:
                raise serializers.ValidationError(
                    {"parent": ["No adapter with that name@version in the project."]}
                )
        values.pop("parent", None)
        adapter = services.adapter_register(
            project=project, base_model=base_model, parent=parent, actor=request.user, **values
        )
        return Response(AdapterSerializer(adapter).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AdapterStatusSerializer, responses={200: AdapterSerializer})
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request: Request, pk: str | None = None) -> Response:
        adapter = self.get_object()
        data = AdapterStatusSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        adapter = services.adapter_set_status(
            adapter=adapter,
            status=data.validated_data["status"],
            note=data.validated_data.get("note", ""),
            actor=request.user,
        )
        return Response(AdapterSerializer(adapter).data)
