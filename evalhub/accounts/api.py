"""API for the signed-in user, projects, memberships and API tokens.

Token management needs an interactive session: a leaked CI token must not be able to mint itself a
successor. Revoking works either way.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.accounts import selectors, services
from evalhub.accounts.models import ApiToken, Membership, Project, Role
from evalhub.api import LoginRateThrottle
from evalhub.permissions import (
    ProjectAdminPermission,
    SessionOnlyPermission,
    admin_projects_for,
    is_site_admin,
    projects_for,
)


class MembershipBriefSerializer(serializers.ModelSerializer[Membership]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    project_name = serializers.CharField(source="project.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["project", "project_name", "role"]
        read_only_fields = fields


class MeSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    is_site_admin = serializers.BooleanField()
    auth = serializers.ChoiceField(choices=["session", "token"])
    token_project = serializers.CharField(allow_null=True)
    memberships = MembershipBriefSerializer(many=True)


class MeView(APIView):
    """Who am I: username, how I authenticated, and my roles (for a token: in its project only)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        user: Any = request.user
        memberships = Membership.objects.filter(user=user).select_related("project")
        if token is not None:
            memberships = memberships.filter(project_id=token.project_id)
        data = {
            "username": request.user.get_username(),
            "is_site_admin": is_site_admin(user=request.user, auth=request.auth),
            "auth": "token" if token else "session",
            "token_project": token.project.slug if token else None,
            "memberships": memberships.order_by("project__name"),
        }
        return Response(MeSerializer(data).data)


class ProjectSerializer(serializers.ModelSerializer[Project]):
    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at"]
        read_only_fields = ["slug", "created_at"]


class ProjectCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True)


class SiteAdminCreatePermission(permissions.BasePermission):
    message = "Only site admins create projects."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return is_site_admin(user=request.user, auth=request.auth)


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Project]):
    """Projects where I hold a staff role (raters reach their work through the rater API)."""

    serializer_class = ProjectSerializer
    permission_classes = [permissions.IsAuthenticated, SiteAdminCreatePermission]
    lookup_field = "slug"
    lookup_value_regex = "[-a-zA-Z0-9_]+"
    filterset_fields = ["name"]

    def get_queryset(self) -> QuerySet[Project]:
        return projects_for(user=self.request.user, auth=self.request.auth).order_by("name")

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def create(self, request: Request) -> Response:
        data = ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(
            name=data.validated_data["name"],
            description=data.validated_data.get("description", ""),
            actor=request.user,
        )
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "project", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipRoleSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Membership],
):
    """Members of the projects I administer. Adding an existing member changes their role."""

    serializer_class = MembershipSerializer
    permission_classes = [ProjectAdminPermission]
    filterset_fields = {"project__slug": ["exact"], "role": ["exact"], "user__username": ["exact"]}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Membership]:
        projects = admin_projects_for(user=self.request.user, auth=self.request.auth)
        return (
            Membership.objects.filter(project__in=projects)
            .select_related("project", "user")
            .order_by("project__name", "user__username")
        )

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def create(self, request: Request) -> Response:
        data = MembershipCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = (
            admin_projects_for(user=request.user, auth=request.auth)
            .filter(slug=data.validated_data["project"])
            .first()
        )
        if project is None:
            raise serializers.ValidationError({"project": ["Unknown project, or you do not administer it."]})
        user = (
            get_user_model().objects.filter(username=data.validated_data["username"], is_active=True).first()
        )
        if user is None:
            raise serializers.ValidationError({"username": ["No active user with that username."]})
        membership = services.membership_set(
            project=project, user=user, role=data.validated_data["role"], actor=request.user
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipRoleSerializer, responses={200: MembershipSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        data = MembershipRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set(
            project=membership.project,
            user=membership.user,
            role=data.validated_data["role"],
            actor=request.user,
        )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.membership_remove(membership=instance, actor=self.request.user)


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.CharField(source="user.username", read_only=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "project",
            "owner",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = fields

    def get_active(self, token: ApiToken) -> bool:
        return token.is_active


class TokenCreateSerializer(serializers.Serializer[Any]):
    project = serializers.SlugField()
    name = serializers.CharField(max_length=120)
    lifetime_days = serializers.IntegerField(
        required=False, help_text="Days until the token expires (default: the site's token lifetime)."
    )


class TokenCreatedSerializer(TokenSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; only its hash is stored.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ApiToken]):
    """My tokens (and, for project admins, their projects' tokens). Secrets are never listed."""

    serializer_class = TokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = {"project__slug": ["exact"], "revoked_at": ["isnull"]}

    def get_permissions(self) -> Any:
        if self.action == "create":
            return [permissions.IsAuthenticated(), SessionOnlyPermission()]
        return super().get_permissions()

    def get_throttles(self) -> list[Any]:
        throttles = super().get_throttles()
        if self.action == "create":
            throttles.append(LoginRateThrottle())
        return throttles

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.token_list_for_user(user=self.request.user, auth=self.request.auth)

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = (
            selectors.token_projects_for_user(user=request.user)
            .filter(slug=data.validated_data["project"])
            .first()
        )
        if project is None:
            raise serializers.ValidationError({"project": ["Unknown project, or you are not a member."]})
        name, days = data.validated_data["name"], data.validated_data.get("lifetime_days")
        services.check_token_create(user=request.user, project=project, name=name, lifetime_days=days)
        token, secret = services.token_create(
            user=request.user, project=project, name=name, lifetime_days=days, actor=request.user
        )
        token.secret = secret  # type: ignore[attr-defined]
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = services.token_revoke(token=self.get_object(), actor=request.user)
        return Response(TokenSerializer(token).data)
