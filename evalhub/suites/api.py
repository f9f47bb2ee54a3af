"""API for suites: list and read suites, versions and cases; import by multipart upload or JSON; export.

An import of more than EVALHUB_SUITE_BACKGROUND_ROWS rows answers 202 with the queued upload, whose
`url` (/api/v1/suite-uploads/<id>/) reports pending -> screening -> imported or failed.

Errors use the project-wide format; an import with problems answers 400 with
`{"error": {"code": "invalid", "message": ..., "fields": {"rows": [{"row", "column", "problem"}]}}}`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from evalhub.errors import ValidationFailed
from evalhub.parsers import StrictJSONParser
from evalhub.permissions import ProjectRolePermission, projects_for, writable_project
from evalhub.suites import selectors, services
from evalhub.suites.export import export_csv_lines, export_xlsx
from evalhub.suites.models import Case, Origin, Split, Suite, SuiteVersion, Upload, UploadStatus
from evalhub.suites.parsing import FORMATS


class SuiteSerializer(serializers.ModelSerializer[Suite]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, allow_null=True)
    version_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Suite
        fields = [
            "id",
            "project",
            "name",
            "description",
            "data_source",
            "consent_statement",
            "latest_version",
            "version_count",
            "created_at",
        ]
        read_only_fields = fields


class SuiteVersionSerializer(serializers.ModelSerializer[SuiteVersion]):
    suite_name = serializers.CharField(source="suite.name", read_only=True)
    project = serializers.CharField(source="suite.project.slug", read_only=True)
    dropped = serializers.SerializerMethodField()

    class Meta:
        model = SuiteVersion
        fields = [
            "id",
            "suite",
            "suite_name",
            "project",
            "number",
            "content_hash",
            "source_filename",
            "source_format",
            "case_count",
            "pii_decision",
            "pii_justification",
            "pii_report",
            "diff",
            "fidelity",
            "dropped",
            "locked_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_dropped(self, version: SuiteVersion) -> dict[str, int]:
        """Every field of a promptfoo config that the import did not use, with its count."""
        return dict((version.fidelity or {}).get("dropped") or {})


class CaseSerializer(serializers.ModelSerializer[Case]):
    class Meta:
        model = Case
        fields = [f.name for f in Case._meta.concrete_fields]
        read_only_fields = fields


class UploadStatusSerializer(serializers.ModelSerializer[Upload]):
    """A queued import: pending -> screening (rows_screened of rows_total) -> imported or failed; a
    large upload read by a task: reading -> staged, or checked (a dry run, its `report`), or failed."""

    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.SerializerMethodField()
    version = SuiteVersionSerializer(read_only=True)
    report = serializers.SerializerMethodField()

    class Meta:
        model = Upload
        fields = [
            "id",
            "url",
            "project",
            "suite_name",
            "filename",
            "status",
            "rows_total",
            "rows_screened",
            "version",
            "error",
            "report",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, upload: Upload) -> str:
        return reverse("suite-upload-detail", kwargs={"pk": upload.pk})

    def get_report(self, upload: Upload) -> dict[str, Any] | None:
        """A dry run's answer once `checked`; null otherwise."""
        return upload.report if upload.status == UploadStatus.CHECKED else None


def _imported(result: services.Imported | Upload) -> Response:
    """201 with the version, or 202 with the queued upload's status (its `url` to poll, also `Location`)."""
    if isinstance(result, Upload):
        data = UploadStatusSerializer(result).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})
    return Response(SuiteVersionSerializer(result.version).data, status=status.HTTP_201_CREATED)


class ImportChoicesSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    name = serializers.CharField(max_length=200)
    pii_action = serializers.ChoiceField(choices=services.PII_ACTIONS, default="redact")
    pii_justification = serializers.CharField(required=False, allow_blank=True, default="")
    data_source = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    consent_statement = serializers.CharField(required=False, allow_blank=True, default="")
    only_valid_rows = serializers.BooleanField(required=False, default=False)


@extend_schema_field(
    {"type": "string", "description": 'field=column pairs ("input=prompt,key=id") or a JSON object.'}
)
class MappingField(serializers.Field):
    """field -> column, as a JSON object or "field=column,field=column" (handy in multipart forms)."""

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
        if isinstance(data, str):
            text = data.strip()
            if not text:
                return {}
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise serializers.ValidationError("Not valid JSON.") from exc
                if isinstance(value, dict):
                    return {str(k): str(v) for k, v in value.items()}
            else:
                pairs = [p.partition("=") for p in text.split(",") if p.strip()]
                if all(sep for _, sep, _ in pairs):
                    return {k.strip(): v.strip() for k, _, v in pairs}
        raise serializers.ValidationError('Give a JSON object {"input": "prompt"} or input=prompt,key=id.')

    def to_representation(self, value: Any) -> Any:
        return value


class UploadSerializer(ImportChoicesSerializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_blank=True, default="")
    delimiter = serializers.ChoiceField(choices=[",", ";", "\t", "|"], required=False, default=",")
    sheet = serializers.CharField(required=False, allow_blank=True, default="")
    input_var = serializers.CharField(required=False, allow_blank=True, default="")
    mapping = MappingField(required=False)
    dry_run = serializers.BooleanField(required=False, default=False)


class JsonImportSerializer(ImportChoicesSerializer):
    cases = serializers.ListField(child=serializers.JSONField(), allow_empty=False)


def _choices(data: dict[str, Any]) -> services.ImportChoices:
    return services.ImportChoices(
        pii_action=data["pii_action"],
        pii_justification=data.get("pii_justification", ""),
        data_source=data.get("data_source", ""),
        consent_statement=data.get("consent_statement", ""),
        only_valid_rows=data.get("only_valid_rows", False),
    )


class SuiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Suite]):
    """Suites in your projects. POST a JSON body of cases, or POST a file to `upload/`."""

    serializer_class = SuiteSerializer
    permission_classes = [ProjectRolePermission]
    filterset_fields = ["name"]
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Suite]:
        qs = selectors.suite_list(projects=projects_for(user=self.request.user, auth=self.request.auth))
        project = self.request.query_params.get("project")
        return qs.filter(project__slug=project) if project else qs

    @extend_schema(
        request=JsonImportSerializer, responses={201: SuiteVersionSerializer, 202: UploadStatusSerializer}
    )
    def create(self, request: Request) -> Response:
        data = JsonImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = writable_project(request, values["project"])
        version = services.suite_import_cases(
            project=project,
            name=values["name"],
            cases=values["cases"],
            actor=request.user,
            choices=_choices(values),
        )
        return _imported(version)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: SuiteVersionSerializer, 202: UploadStatusSerializer},
    )
    @action(detail=False, methods=["post"], url_path="upload")
    def upload(self, request: Request) -> Response:
        data = UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = writable_project(request, values["project"])
        upload = values["file"]
        options = services.ImportOptions(
            format=values.get("format", ""),
            delimiter=values.get("delimiter", ","),
            sheet=values.get("sheet", ""),
            input_var=values.get("input_var", ""),
            mapping=values.get("mapping") or None,
        )
        if values.get("dry_run"):
            report = services.suite_upload_check(
                project=project, file=upload, filename=upload.name, options=options, actor=request.user
            )
            if isinstance(report, Upload):  # read by a task: its `report` once `checked`
                return _imported(report)
            return Response(report.to_dict(), status=status.HTTP_200_OK)
        version = services.suite_import_upload(
            project=project,
            name=values["name"],
            file=upload,
            filename=upload.name,
            options=options,
            actor=request.user,
            choices=_choices(values),
        )
        return _imported(version)


class SuiteUploadViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet[Upload]):
    """The status of an import queued because it was large (the `url` a 202 answer gave)."""

    serializer_class = UploadStatusSerializer
    permission_classes = [IsAuthenticated]  # the queryset is scoped to the user's projects

    def get_queryset(self) -> QuerySet[Upload]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        return Upload.objects.filter(project__in=projects).select_related(
            "project", "version__suite__project"
        )


class SuiteVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[SuiteVersion]
):
    serializer_class = SuiteVersionSerializer
    permission_classes = [IsAuthenticated]  # the queryset is scoped to the user's projects
    filterset_fields = ["suite", "number"]

    def get_queryset(self) -> QuerySet[SuiteVersion]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        return (
            SuiteVersion.objects.filter(suite__project__in=projects)
            .select_related("suite", "suite__project")
            .order_by("suite__name", "-number")
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def counts(self, request: Request, pk: str | None = None) -> Response:
        return Response(selectors.case_counts(version=self.get_object()))

    @extend_schema(
        parameters=[OpenApiParameter("type", str, enum=["csv", "xlsx"], description="Default csv.")],
        responses={(200, "text/csv"): bytes},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Any:
        version = self.get_object()
        kind = request.query_params.get("type", "csv")
        stem = f"{version.suite.name}-v{version.number}".replace(" ", "_")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
        if kind == "xlsx":
            handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)  # noqa: SIM115
            handle.close()
            export_xlsx(version=version, path=Path(handle.name))
            response = FileResponse(open(handle.name, "rb"), as_attachment=True, filename=f"{safe}.xlsx")  # noqa: SIM115
            Path(handle.name).unlink()  # the open handle keeps the data readable on POSIX
            return response
        if kind != "csv":
            raise ValidationFailed("type must be csv or xlsx.", fields={"type": ["csv or xlsx"]})
        response = StreamingHttpResponse(
            export_csv_lines(version=version), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{safe}.csv"'
        return response


class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Case]):
    """Cases; filter with version, tag, origin, split, category, slice (name or name:value) and search."""

    serializer_class = CaseSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []

    @extend_schema(
        parameters=[
            OpenApiParameter("version", int),
            OpenApiParameter("tag", str),
            OpenApiParameter("origin", str, enum=Origin.values),
            OpenApiParameter("split", str, enum=Split.values),
            OpenApiParameter("category", str),
            OpenApiParameter("slice", str, description="name or name:value"),
            OpenApiParameter("search", str, description="Text in the id, input or reference."),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Case]:
        projects = projects_for(user=self.request.user, auth=self.request.auth)
        params = self.request.query_params
        if self.action == "list" and params.get("version"):
            try:
                version = SuiteVersion.objects.get(pk=int(params["version"]), suite__project__in=projects)
            except (ValueError, SuiteVersion.DoesNotExist):
                return Case.objects.none()
            name, _, value = params.get("slice", "").partition(":")
            return selectors.case_filter(
                version=version,
                tag=params.get("tag", ""),
                origin=params.get("origin", ""),
                split=params.get("split", ""),
                category=params.get("category", ""),
                slice_name=name,
                slice_value=value,
                search=params.get("search", ""),
            )
        if self.action == "list":
            raise ValidationFailed("Give ?version=<id> to list cases.", fields={"version": ["Required."]})
        return Case.objects.filter(version__suite__project__in=projects)
