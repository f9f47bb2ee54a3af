"""The rater JSON API and the study owner's endpoints, under /api/v1/rater/.

Rater endpoints return only BlindTask data (annotation.blinding); they answer the same 404 for a
task that does not exist and for someone else's task, so ids cannot be probed. Errors use the
project's one format (evalhub.api.exception_handler).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.blinding import task_blind_by_id
from annotation.models import RaterPool, Study, StudyRouting
from annotation.queue import task_assign_next
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.selectors import adapter_by_label
from evalhub.errors import NotFound, ValidationFailed
from evalhub.permissions import WRITE_ROLES, projects_for
from evalhub.runs.models import Run

# --- raters -------------------------------------------------------------------------------------


class BlindSideOut(serializers.Serializer[Any]):
    label = serializers.CharField()
    text = serializers.CharField()


class BlindTaskOut(serializers.Serializer[Any]):
    public_id = serializers.CharField()
    input = serializers.CharField()
    reference = serializers.CharField()
    sides = BlindSideOut(many=True)
    rubric = serializers.JSONField(
        help_text="The rubric this task is rated on (single outputs: the study's single rubric)."
    )
    expected = serializers.ListField(
        child=serializers.CharField(),
        help_text="A single output's expected behaviour, in words (empty for pairs).",
    )


class NextOut(serializers.Serializer[Any]):
    task = BlindTaskOut(allow_null=True)
    lease_seconds = serializers.IntegerField()


def _ready_study(request: Request, public_id: str | None) -> Study:
    if not public_id:
        raise ValidationFailed("Say which study: ?study=<study id>.", fields={"study": ["Required."]})
    study = selectors.study_for_rater(public_id=public_id, rater=request.user, auth=request.auth)
    selectors.rater_check_ready(study=study, rater=request.user)
    return study


class NextTaskApi(APIView):
    """Lease the next task of a study (or get back the one you hold) and return it blinded."""

    @extend_schema(parameters=[OpenApiParameter("study", str, required=True)], responses={200: NextOut})
    def get(self, request: Request) -> Response:
        study = _ready_study(request, request.query_params.get("study"))
        assignment = task_assign_next(study=study, rater=request.user, auth=request.auth)
        if assignment is None:
            return Response({"task": None, "lease_seconds": study.lease_seconds})
        blind = task_blind_by_id(task_id=assignment.task_id)
        return Response({"task": blind.as_dict(), "lease_seconds": study.lease_seconds})


class SideFlagIn(serializers.Serializer[Any]):
    flagged = serializers.BooleanField(required=False, default=False)
    spans = serializers.ListField(child=serializers.DictField(), required=False, default=list)


class RatingIn(serializers.Serializer[Any]):
    scores = serializers.DictField(child=serializers.DictField())
    preference = serializers.CharField(required=False, allow_blank=True, default="")
    hallucination = serializers.DictField(child=SideFlagIn(), required=False, default=dict)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    time_on_task_ms = serializers.IntegerField(required=False, min_value=0, allow_null=True)


class RatingOut(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["stored", "already_stored"])


class RatingSubmitApi(APIView):
    """Store a rating of a task you hold. Retrying the same rating is harmless (200 already_stored)."""

    @extend_schema(request=RatingIn, responses={201: RatingOut, 200: RatingOut})
    def post(self, request: Request, task_id: str) -> Response:
        # RatingIn documents the body; the checks themselves are the rubric's (annotation.rubric),
        # one home for them, so the body goes to the service as sent.
        if not isinstance(request.data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", fields={"non_field_errors": ["Not an object."]}
            )
        _, created = services.rating_submit(
            public_id=task_id, rater=request.user, data=request.data, auth=request.auth
        )
        if created:
            return Response({"status": "stored"}, status=status.HTTP_201_CREATED)
        return Response({"status": "already_stored"})


class SkipIn(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=300)


class TaskSkipApi(APIView):
    @extend_schema(request=SkipIn, responses={200: RatingOut})
    def post(self, request: Request, task_id: str) -> Response:
        data = SkipIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.task_skip(
            public_id=task_id, rater=request.user, reason=data.validated_data["reason"], auth=request.auth
        )
        return Response({"status": "skipped"})


class ProgressOut(serializers.Serializer[Any]):
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    remaining = serializers.IntegerField()


class ProgressApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("study", str, required=True)], responses={200: ProgressOut})
    def get(self, request: Request) -> Response:
        study = selectors.study_for_rater(
            public_id=request.query_params.get("study", ""), rater=request.user, auth=request.auth
        )
        return Response(selectors.rater_progress(study=study, rater=request.user).as_dict())


class AssignedStudyOut(serializers.Serializer[Any]):
    public_id = serializers.CharField()
    name = serializers.CharField()
    instructions = serializers.CharField()
    terms = serializers.CharField()
    consented = serializers.BooleanField()


class AssignedStudiesApi(APIView):
    """The open studies you may rate, with their instructions and terms."""

    @extend_schema(responses={200: AssignedStudyOut(many=True)})
    def get(self, request: Request) -> Response:
        rows = [
            {
                "public_id": study.public_id,
                "name": study.name,
                "instructions": study.instructions,
                "terms": study.terms,
                "consented": selectors.rater_has_consented(study=study, rater=request.user),
            }
            for study in selectors.rater_studies(rater=request.user, auth=request.auth)
        ]
        return Response(rows)


class ConsentApi(APIView):
    @extend_schema(request=None, responses={200: AssignedStudyOut})
    def post(self, request: Request, study_id: str) -> Response:
        study = selectors.study_for_rater(public_id=study_id, rater=request.user, auth=request.auth)
        services.consent_accept(study=study, rater=request.user)
        return Response(
            {
                "public_id": study.public_id,
                "name": study.name,
                "instructions": study.instructions,
                "terms": study.terms,
                "consented": True,
            }
        )


# --- study owners ---------------------------------------------------------------------------------


class GoldIn(serializers.Serializer[Any]):
    case = serializers.CharField(help_text="The case key.")
    preference = serializers.ChoiceField(choices=services.GOLD_PREFERENCES, required=False)
    hallucination = serializers.DictField(child=serializers.BooleanField(), required=False)


class StudyCreateIn(serializers.Serializer[Any]):
    run = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    baseline = serializers.CharField(required=False, help_text="name@version; default: the run's baseline.")
    candidates = serializers.ListField(child=serializers.CharField(), required=False)
    pairing = serializers.ChoiceField(choices=services.PAIRINGS, default="baseline")
    sample_size = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    stratify_by_tag = serializers.BooleanField(default=False)
    single_output_categories = serializers.ListField(
        child=serializers.CharField(), required=False, default=list(services.DEFAULT_SINGLE_OUTPUT_CATEGORIES)
    )
    overlap = serializers.IntegerField(default=2, min_value=1, max_value=50)
    lease_seconds = serializers.IntegerField(default=900, min_value=1, max_value=services.MAX_LEASE_SECONDS)
    gold_rate = serializers.FloatField(default=0.0, min_value=0, max_value=1)
    gold_tasks = GoldIn(many=True, required=False, default=list)
    rubric = serializers.JSONField(required=False, allow_null=True)
    pool = serializers.CharField(required=False, allow_blank=True, help_text="Rater pool name.")
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    terms = serializers.CharField(required=False, allow_blank=True, default="")
    seed = serializers.IntegerField(default=0)
    allow_case_repeats = serializers.BooleanField(
        default=False,
        help_text="Let a rater get several tasks of one case (very small suites only: weakens blinding).",
    )
    allow_missing = serializers.BooleanField(
        default=True, help_text="False: refuse, saying how many tasks would lack an output, so you can wait."
    )
    judge_adapter = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="name@version of a catalogue adapter that judges every pair (by its log-probabilities).",
    )
    judge_base_model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Name of a catalogue base model that judges every pair (when no judge adapter is given).",
    )
    judge_endpoint = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Name of one of the project's HTTP judge endpoints (OpenAI-compatible) that judges every "
        "pair; instead of a catalogue judge.",
    )
    routing = serializers.ChoiceField(
        choices=StudyRouting.values,
        default=StudyRouting.RANDOM,
        help_text="uncertainty_first: experts first get the pairs the judge is least sure of (needs a judge).",
    )
    audit_share = serializers.FloatField(
        default=0.2, min_value=0, max_value=1, help_text="Under uncertainty_first, the uniformly drawn share."
    )


class StudySummaryOut(serializers.Serializer[Any]):
    public_id = serializers.CharField()
    name = serializers.CharField()
    project = serializers.CharField()
    run = serializers.IntegerField()
    status = serializers.CharField()
    overlap = serializers.IntegerField()
    lease_seconds = serializers.IntegerField()
    gold_rate = serializers.FloatField()
    tasks = serializers.IntegerField()
    gold_tasks = serializers.IntegerField()
    complete = serializers.IntegerField()
    ratings = serializers.IntegerField()
    needed = serializers.IntegerField()
    routing = serializers.CharField()
    audit_share = serializers.FloatField()
    judge = serializers.JSONField(help_text="The judge's spec ({} for none).")
    judge_status = serializers.CharField(allow_blank=True, help_text="pending, running, done or failed.")


class RaterStatsOut(serializers.Serializer[Any]):
    username = serializers.CharField()
    submitted = serializers.IntegerField()
    skipped = serializers.IntegerField()
    active = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    gold_rated = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    agreement = serializers.FloatField(allow_null=True)
    agreement_n = serializers.IntegerField()


class StudyDetailOut(StudySummaryOut):
    preference_alpha = serializers.FloatField(allow_null=True)
    preference_alpha_reason = serializers.CharField(allow_null=True)
    raters = RaterStatsOut(many=True)


def _study_summary(study: Study) -> dict[str, Any]:
    progress = selectors.study_progress(study=study)
    return {
        "public_id": study.public_id,
        "name": study.name,
        "project": study.project.slug,
        "run": study.run_id,
        "status": study.status,
        "overlap": study.overlap,
        "lease_seconds": study.lease_seconds,
        "gold_rate": study.gold_rate,
        "tasks": progress.tasks,
        "gold_tasks": progress.gold_tasks,
        "complete": progress.complete,
        "ratings": progress.ratings,
        "needed": progress.needed,
        "routing": study.routing,
        "audit_share": study.audit_share,
        "judge": study.judge_spec,
        "judge_status": study.judge_state.get("status", ""),
    }


def _adapter(run: Run, label: str, field: str) -> Adapter:
    adapter = adapter_by_label(project=run.project, label=label)
    if adapter is None:
        raise ValidationFailed(f"No adapter {label!r} in the project.", fields={field: ["Unknown adapter."]})
    return adapter


def _base_model(run: Run, name: str) -> BaseModel:
    model = BaseModel.objects.filter(project=run.project, name=name).first()
    if model is None:
        raise ValidationFailed(
            f"No base model {name!r} in the project.", fields={"judge_base_model": ["Unknown model."]}
        )
    return model


def _judge_endpoint(run: Run, name: str) -> Any:
    from evalhub.judging.models import JudgeEndpoint

    endpoint = JudgeEndpoint.objects.filter(project=run.project, name=name).first()
    if endpoint is None:
        raise ValidationFailed(
            f"No judge endpoint {name!r} in the project.", fields={"judge_endpoint": ["Unknown endpoint."]}
        )
    return endpoint


class StudyListCreateApi(APIView):
    """Studies of your projects (staff roles); POST creates one from a run."""

    @extend_schema(operation_id="rater_studies_list", responses={200: StudySummaryOut(many=True)})
    def get(self, request: Request) -> Response:
        studies = selectors.studies_for_owner(user=request.user, auth=request.auth)
        return Response([_study_summary(study) for study in studies[:200]])

    @extend_schema(request=StudyCreateIn, responses={201: StudySummaryOut})
    def post(self, request: Request) -> Response:
        data = StudyCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        projects = projects_for(user=request.user, auth=request.auth, roles=WRITE_ROLES)
        run = Run.objects.filter(pk=values["run"], project__in=projects).select_related("project").first()
        if run is None:
            raise NotFound("No run with this id in a project you can write to.")
        pool = None
        if values.get("pool"):
            pool = RaterPool.objects.filter(project=run.project, name=values["pool"]).first()
            if pool is None:
                raise ValidationFailed(
                    "No rater pool of that name in the project.", fields={"pool": ["Unknown."]}
                )
        study = services.study_create_from_run(
            run=run,
            name=values["name"],
            baseline=_adapter(run, values["baseline"], "baseline") if values.get("baseline") else None,
            candidates=[_adapter(run, c, "candidates") for c in values["candidates"]]
            if values.get("candidates")
            else None,
            pairing=values["pairing"],
            sample_size=values.get("sample_size"),
            stratify_by_tag=values["stratify_by_tag"],
            single_output_categories=values["single_output_categories"],
            overlap=values["overlap"],
            lease_seconds=values["lease_seconds"],
            gold_rate=values["gold_rate"],
            gold_tasks=[dict(g) for g in values["gold_tasks"]],
            rubric=values.get("rubric"),
            pool=pool,
            instructions=values["instructions"],
            terms=values["terms"],
            seed=values["seed"],
            allow_case_repeats=values["allow_case_repeats"],
            allow_missing=values["allow_missing"],
            judge_adapter=_adapter(run, values["judge_adapter"], "judge_adapter")
            if values.get("judge_adapter")
            else None,
            judge_base_model=_base_model(run, values["judge_base_model"])
            if values.get("judge_base_model")
            else None,
            judge_endpoint=_judge_endpoint(run, values["judge_endpoint"])
            if values.get("judge_endpoint")
            else None,
            routing=values["routing"],
            audit_share=values["audit_share"],
            actor=request.user,
        )
        return Response(_study_summary(study), status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    """A study's progress and per-rater quality figures (staff roles of its project)."""

    @extend_schema(responses={200: StudyDetailOut})
    def get(self, request: Request, study_id: str) -> Response:
        study = selectors.study_for_owner(user=request.user, public_id=study_id, auth=request.auth)
        alpha, reason = selectors.study_preference_alpha(study=study)
        return Response(
            {
                **_study_summary(study),
                "preference_alpha": alpha,
                "preference_alpha_reason": reason,
                "raters": [vars(r) for r in selectors.study_rater_stats(study=study)],
            }
        )


class StudyStatusIn(serializers.Serializer[Any]):
    status = serializers.CharField()


class StudyStatusApi(APIView):
    @extend_schema(request=StudyStatusIn, responses={200: StudySummaryOut})
    def post(self, request: Request, study_id: str) -> Response:
        study = selectors.study_for_owner(user=request.user, public_id=study_id, auth=request.auth)
        data = StudyStatusIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.study_set_status(study=study, status=data.validated_data["status"], actor=request.user)
        return Response(_study_summary(study))
