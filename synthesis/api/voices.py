"""/api/voices: the voice catalogue (Bark's presets by language, Piper's voice, the caller's own), and
uploading a voice from a Bark `.npz` preset or a reference clip (with its transcript, where the cloning method
here needs one)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, throttle_classes
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from synthesis.api.auth import caller, submitter
from synthesis.api.content import VoiceUploadParser
from synthesis.api.limits import ReadRateThrottle, UploadRateThrottle
from synthesis.api.serializers import errors
from synthesis.engines import InvalidVoiceUpload, cloning_engine
from synthesis.jobs.selectors import get_voice, usable_voices
from synthesis.jobs.voices import catalogue, create_voice_from_clip, create_voice_from_npz, delete_voice
from synthesis.models import Voice

VOICE_ID = OpenApiParameter("voice_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class VoiceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="voice_id", help_text="Use it as `voice` in requests: custom/<uuid>.")
    engine = serializers.SerializerMethodField()

    class Meta:
        model = Voice
        fields = ["id", "name", "engine", "source", "method", "status", "error", "transcript", "created_at"]
        extra_kwargs = {
            "method": {
                "help_text": "How the clip became a voice: `hubert` (semantic tokens from the audio) or `transcript` "
                "(from the words, through Bark's text model); empty for .npz presets and until a worker builds it."
            }
        }

    def get_engine(self, voice: Voice) -> str:
        return cloning_engine().name


class VoiceUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    npz = serializers.FileField(required=False, help_text="A Bark preset: semantic_prompt, coarse_prompt, fine_prompt.")
    clip = serializers.FileField(required=False, help_text="A 2-30 s WAV, MP3 or FLAC of the voice.")
    transcript = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The words spoken in the clip: needed unless this server clones from the audio "
        "(GET /api/capabilities, `cloning.needs_transcript`).",
    )

    def validate(self, data: dict) -> dict:
        if bool(data.get("npz")) == bool(data.get("clip")):
            raise ValidationError({"npz": ["Upload exactly one of 'npz' (a Bark preset) or 'clip' (a recording)."]})
        return data


@extend_schema(
    methods=["GET"],
    tags=["voices"],
    operation_id="voices_list",
    summary="Every voice the caller may use",
    responses={200: OpenApiTypes.OBJECT, **errors(401)},
)
@extend_schema(
    methods=["POST"],
    tags=["voices"],
    operation_id="voices_create",
    summary="Upload a voice: a Bark .npz preset (ready at once) or a reference clip (encoded by a worker)",
    request={"multipart/form-data": VoiceUploadSerializer},
    responses={
        201: OpenApiResponse(VoiceSerializer, description="From a .npz: ready to use."),
        202: OpenApiResponse(VoiceSerializer, description="From a clip: pending until a worker encodes it."),
        **errors(400, 401, 413, 415, 429),
    },
)
@api_view(["GET", "POST"])
@parser_classes([VoiceUploadParser])
@throttle_classes([UploadRateThrottle])
def voices(request: Request) -> Response:
    if request.method == "GET":
        mine = VoiceSerializer(usable_voices(caller(request)).order_by("name"), many=True).data
        return Response({"voices": catalogue(), "yours": mine})
    serializer = VoiceUploadSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    try:
        if data.get("npz"):
            voice = create_voice_from_npz(data["name"], data["npz"].read(), **submitter(request))
        else:
            voice = create_voice_from_clip(
                data["name"], data["clip"].read(), data.get("transcript"), **submitter(request)
            )
    except InvalidVoiceUpload as exc:
        raise ValidationError({exc.field or ("npz" if data.get("npz") else "clip"): [str(exc)]}) from None
    code = status.HTTP_201_CREATED if voice.status == Voice.Status.READY else status.HTTP_202_ACCEPTED
    return Response(VoiceSerializer(voice).data, status=code)


@extend_schema(
    methods=["GET"],
    tags=["voices"],
    operation_id="voice_retrieve",
    summary="One of the caller's voices (poll a clip voice until it is ready)",
    parameters=[VOICE_ID],
    responses={200: VoiceSerializer, **errors(401, 404)},
)
@extend_schema(
    methods=["DELETE"],
    tags=["voices"],
    operation_id="voice_destroy",
    summary="Delete one of the caller's voices",
    parameters=[VOICE_ID],
    responses={204: None, **errors(401, 404)},
)
@api_view(["GET", "DELETE"])
@throttle_classes([ReadRateThrottle])
def voice_detail(request: Request, voice_id: str) -> Response:
    voice = get_voice(caller(request), voice_id)
    if request.method == "DELETE":
        delete_voice(voice)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(VoiceSerializer(voice).data)
