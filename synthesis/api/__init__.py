"""The REST API and the OpenAI-compatible speech endpoint, on Django REST framework.

Views stay thin: an input serializer, one call into `synthesis.jobs.submit`, an output serializer. Who may call
what lives in `auth`, how often in `limits`, and how every failure becomes JSON in `errors`.
"""
