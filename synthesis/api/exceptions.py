"""The API's own error types, beside DRF's. Kept apart from `errors` (the handler), which imports DRF's
views module: the parser in `content` raises these, and DRF imports the parser while loading its views."""

from rest_framework import exceptions, status

from synthesis.jobs.submit import QueueFull


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class QueueFullError(exceptions.Throttled):
    default_code = "queue_full"

    def __init__(self, queue_full: QueueFull) -> None:
        super().__init__(wait=queue_full.retry_after)
        self.message = str(queue_full)


class EngineUnavailableError(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "No engine can run this job now."
    default_code = "engine_unavailable"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The job is not in a state that allows this."
    default_code = "conflict"
