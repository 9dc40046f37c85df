"""/v1/audio/voices and /v1/audio/voice_consents: OpenAI's custom-voice endpoints, with its field names, objects and
limits, on barksite's own voices and cloning (`synthesis.jobs.consents`). A voice made here is an uploaded voice like
those of /api/voices, pending until a worker encodes it; /v1/audio/speech takes it as `voice: {"id": "voice_..."}`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import api_view, parser_classes, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response

from synthesis.api.auth import caller, submitter
from synthesis.api.content import VoiceUploadParser
from synthesis.api.limits import ReadRateThrottle, UploadRateThrottle
from synthesis.jobs import consents
from synthesis.jobs.voices import delete_voice
from synthesis.media.uploads import FORMAT_NAMES, MAX_UPLOAD_BYTES
from synthesis.models import Voice, VoiceConsent

AUDIO_FILE = f"{FORMAT_NAMES}, at most {MAX_UPLOAD_BYTES} bytes (10 MiB)."
# Names hold no NUL and at least one character that is not a space (DRF trims the rest): said in the schema too.
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


def _unix(moment: Any) -> int:
    return int(moment.timestamp())


# --- what the endpoints take ---------------------------------------------------------------------------------


class VoiceCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(
        NOT_BLANK, max_length=Voice._meta.get_field("name").max_length, help_text="The name of the new voice."
    )
    audio_sample = serializers.FileField(help_text=f"A 2-30 s recording of the voice: {AUDIO_FILE}")
    consent = serializers.CharField(max_length=100, help_text="The id of your consent recording (cons_...).")
    type = serializers.ChoiceField(
        choices=["audio_sample"], required=False, allow_blank=True,
        help_text="Only audio_sample (empty: the same): barksite clones voices from audio.",
    )  # fmt: skip
    transcript = serializers.CharField(
        required=False, allow_blank=True, default="",
        help_text="barksite's addition: the words spoken in audio_sample, which cloning needs when it cannot "
        "transcribe the sample itself (a 400 on this field says so).",
    )  # fmt: skip


class ConsentCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(NOT_BLANK, max_length=200, help_text="A label for this consent recording.")
    recording = serializers.FileField(help_text=f"The consent recording, at least 1 s of sound: {AUDIO_FILE}")
    language = serializers.CharField(max_length=35, help_text="The BCP 47 tag of the consent phrase (en-US).")


class ConsentUpdateSerializer(serializers.Serializer):
    name = serializers.RegexField(NOT_BLANK, max_length=200, help_text="The new label.")


class ConsentListSerializer(serializers.Serializer):
    after = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The last id of the page before (empty: none)."
    )
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=100)


# --- what they answer ----------------------------------------------------------------------------------------


class VoiceResourceSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.SerializerMethodField(help_text='Use it in speech requests as voice: {"id": ...}.')
    name = serializers.CharField()
    created_at = serializers.SerializerMethodField(help_text="Unix time, seconds.")
    type = serializers.SerializerMethodField()

    @extend_schema_field({"type": "string", "enum": ["audio.voice"]})
    def get_object(self, voice: Voice) -> str:
        return "audio.voice"

    def get_id(self, voice: Voice) -> str:
        return consents.openai_voice_id(voice)

    def get_created_at(self, voice: Voice) -> int:
        return _unix(voice.created_at)

    @extend_schema_field({"type": "string", "enum": ["audio_sample"]})
    def get_type(self, voice: Voice) -> str:
        return "audio_sample"


class VoiceDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["audio.voice.deleted"])
    deleted = serializers.BooleanField()


class ConsentResourceSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    id = serializers.SerializerMethodField()
    name = serializers.CharField()
    language = serializers.CharField()
    created_at = serializers.SerializerMethodField(help_text="Unix time, seconds.")

    @extend_schema_field({"type": "string", "enum": ["audio.voice_consent"]})
    def get_object(self, consent: VoiceConsent) -> str:
        return "audio.voice_consent"

    def get_id(self, consent: VoiceConsent) -> str:
        return consents.consent_id(consent)

    def get_created_at(self, consent: VoiceConsent) -> int:
        return _unix(consent.created_at)


class ConsentListResourceSerializer(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = ConsentResourceSerializer(many=True)  # type: ignore[assignment]  # DRF takes declared fields off the class
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class ConsentDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["audio.voice_consent"])
    deleted = serializers.BooleanField()


def _errors(**statuses: str) -> dict[int, OpenApiResponse]:
    return {int(code[1:]): OpenApiResponse(OpenApiTypes.OBJECT, description=text) for code, text in statuses.items()}


VOICE_ID = OpenApiParameter("voice_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="voice_...")
CONSENT_ID = OpenApiParameter("consent_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="cons_...")


# --- the endpoints -------------------------------------------------------------------------------------------


@extend_schema(
    tags=["openai"],
    operation_id="openai_voices_create",
    summary="Make a custom voice from an audio sample and a consent recording (encoded by a worker)",
    request={"multipart/form-data": VoiceCreateSerializer},
    responses={
        200: OpenApiResponse(VoiceResourceSerializer, description="Pending until a worker encodes it."),
        **_errors(
            s400="An invalid field (param names it): the sample, the consent id, the transcript.",
            s413="The body is larger than 10 MiB and its form fields.",
            s415="Not multipart/form-data.",
        ),
    },
)
@api_view(["POST"])
@parser_classes([VoiceUploadParser])
@throttle_classes([UploadRateThrottle])
def voices(request: Request) -> Response:
    serializer = VoiceCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    voice = consents.create_voice_with_consent(
        data["name"], data["audio_sample"].read(), data["transcript"], data["consent"], **submitter(request)
    )
    return Response(VoiceResourceSerializer(voice).data)


@extend_schema(
    tags=["openai"],
    operation_id="openai_voice_destroy",
    summary="Delete one of your voices",
    parameters=[VOICE_ID],
    responses={200: VoiceDeletedSerializer, **_errors(s404="No such voice of yours.")},
)
@api_view(["DELETE"])
@throttle_classes([ReadRateThrottle])
def voice_detail(request: Request, voice_id: str) -> Response:
    voice = consents.get_openai_voice(caller(request), voice_id)
    delete_voice(voice)
    return Response(VoiceDeletedSerializer({"id": voice_id, "object": "audio.voice.deleted", "deleted": True}).data)


@extend_schema(
    methods=["GET"],
    tags=["openai"],
    operation_id="openai_voice_consents_list",
    summary="Your consent recordings, newest first",
    parameters=[ConsentListSerializer],
    responses={200: ConsentListResourceSerializer, **_errors(s400="A bad limit, or an after that is not yours.")},
)
@extend_schema(
    methods=["POST"],
    tags=["openai"],
    operation_id="openai_voice_consents_create",
    summary="Upload a consent recording",
    request={"multipart/form-data": ConsentCreateSerializer},
    responses={
        200: ConsentResourceSerializer,
        **_errors(
            s400="An invalid field (param names it).",
            s413="The body is larger than 10 MiB and its form fields.",
            s415="Not multipart/form-data.",
        ),
    },
)
@api_view(["GET", "POST"])
@parser_classes([VoiceUploadParser])
@throttle_classes([UploadRateThrottle])
def voice_consents(request: Request) -> Response:
    if request.method == "GET":
        query = ConsentListSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page, has_more = consents.consent_page(caller(request), **query.validated_data)
        ids = [consents.consent_id(consent) for consent in page]
        body = {"object": "list", "data": page, "first_id": ids[0] if ids else None, "has_more": has_more}
        return Response(ConsentListResourceSerializer({**body, "last_id": ids[-1] if ids else None}).data)
    serializer = ConsentCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    consent = consents.create_consent(data["name"], data["language"], data["recording"].read(), **submitter(request))
    return Response(ConsentResourceSerializer(consent).data)


@extend_schema(
    methods=["GET"],
    tags=["openai"],
    operation_id="openai_voice_consent_retrieve",
    summary="One of your consent recordings (its metadata)",
    parameters=[CONSENT_ID],
    responses={200: ConsentResourceSerializer, **_errors(s404="No such consent of yours.")},
)
@extend_schema(
    methods=["POST"],
    tags=["openai"],
    operation_id="openai_voice_consent_update",
    summary="Rename a consent recording (metadata only)",
    parameters=[CONSENT_ID],
    request=ConsentUpdateSerializer,
    responses={
        200: ConsentResourceSerializer,
        **_errors(s400="A blank or too long name.", s404="No such consent of yours.", s415="Not JSON."),
    },
)
@extend_schema(
    methods=["DELETE"],
    tags=["openai"],
    operation_id="openai_voice_consent_destroy",
    summary="Delete a consent recording no voice was made with",
    parameters=[CONSENT_ID],
    responses={
        200: ConsentDeletedSerializer,
        **_errors(s404="No such consent of yours.", s409="Voices made with it still exist: delete them first."),
    },
)
@api_view(["GET", "POST", "DELETE"])
@throttle_classes([ReadRateThrottle])
def voice_consent_detail(request: Request, consent_id: str) -> Response:
    consent = consents.get_consent(caller(request), consent_id)
    if request.method == "POST":
        serializer = ConsentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        consent = consents.rename_consent(consent, serializer.validated_data["name"])
    elif request.method == "DELETE":
        consents.delete_consent(consent)
        return Response(
            ConsentDeletedSerializer({"id": consent_id, "object": "audio.voice_consent", "deleted": True}).data
        )
    return Response(ConsentResourceSerializer(consent).data)
