"""Migration 0008 (Voice.method): clip voices built before HuBERT cloning existed say they came from a transcript."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("synthesis", "0007_job_worker")]
AFTER = [("synthesis", "0008_voice_method")]


@pytest.mark.django_db(transaction=True)
def test_existing_clip_voices_are_marked_as_built_from_their_transcript():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("synthesis", "Voice")
    voices = [("built", "clip", "ready"), ("broken", "clip", "failed"), ("waiting", "clip", "pending")]
    for name, source, status in [*voices, ("preset", "npz", "ready")]:
        old.objects.create(name=name, source=source, status=status)

    executor = MigrationExecutor(connection)  # a fresh graph, as `manage.py migrate` would read it
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("synthesis", "Voice")
    methods = dict(new.objects.values_list("name", "method"))
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())  # back to the latest schema

    assert methods == {"built": "transcript", "broken": "transcript", "waiting": "", "preset": ""}
