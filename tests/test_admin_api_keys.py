"""API keys in the admin: created with the key shown once (only a hash is stored), revoked by action or by
field, with a per-key rate limit and the time each was last used."""

import re

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from synthesis.models import ApiKey

LIST = reverse("admin:synthesis_apikey_changelist")


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(admin_client):
    response = admin_client.post(
        reverse("admin:synthesis_apikey_add"), {"name": "podcast robot", "rate_limit_per_min": "5"}, follow=True
    )

    body = response.content.decode()
    key = re.search(r"<code class='new-key'>([^<]+)</code>", body)[1]
    stored = ApiKey.objects.get()
    assert "API key “podcast robot” created. Copy it now; it will not be shown again:" in body
    assert stored.name == "podcast robot" and stored.rate_limit_per_min == 5
    assert key.startswith(stored.prefix + ".") and key not in stored.hashed_key and key != stored.pk
    assert ApiKey.objects.get_from_key(key) == stored
    later = admin_client.get(reverse("admin:synthesis_apikey_change", args=[stored.pk])).content.decode()
    assert key not in later and key not in admin_client.get(LIST).content.decode()


def test_the_list_shows_rate_limits_and_last_use(admin_client, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 30
    used, _ = ApiKey.objects.create_key(name="busy", rate_limit_per_min=120)
    ApiKey.objects.filter(pk=used.pk).update(last_used_at=timezone.now())
    ApiKey.objects.create_key(name="idle")

    body = admin_client.get(LIST).content.decode()

    assert '<td class="field-rate_limit">120</td>' in body
    assert '<td class="field-rate_limit">default (30)</td>' in body
    assert body.count('<td class="field-last_used_at nowrap">-</td>') == 1
    assert body.count('<td class="field-state"><span class="job-badge job-completed">active</span></td>') == 2


def test_the_revoke_action_revokes_the_selected_keys(admin_client):
    key, secret = ApiKey.objects.create_key(name="leaked")
    keep, _ = ApiKey.objects.create_key(name="fine")

    response = admin_client.post(LIST, {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True)

    assert "1 key revoked; clients using them now get 401." in response.content.decode()
    key.refresh_from_db()
    keep.refresh_from_db()
    assert key.revoked and not keep.revoked
    assert not ApiKey.objects.is_valid(secret)


def test_a_key_can_be_revoked_on_its_page_and_then_never_unrevoked(admin_client):
    key, secret = ApiKey.objects.create_key(name="old laptop")
    url = reverse("admin:synthesis_apikey_change", args=[key.pk])

    admin_client.post(url, {"name": "old laptop", "revoked": "on"})
    page = admin_client.get(url).content.decode()

    key.refresh_from_db()
    assert key.revoked and not ApiKey.objects.is_valid(secret)
    assert 'name="revoked"' not in page  # read-only from now on


def test_the_librarys_own_key_model_is_hidden_from_the_admin(admin_client):
    assert not admin.site.is_registered(APIKey)
    assert admin.site.is_registered(ApiKey)
    assert "rest_framework_api_key" not in admin_client.get(reverse("admin:index")).content.decode()


def test_an_operator_gives_a_key_to_a_user_who_then_sees_its_jobs(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("lin", password="x")
    key, _ = ApiKey.objects.create_key(name="lin's laptop")

    response = admin_client.post(
        reverse("admin:synthesis_apikey_change", args=[key.pk]), {"name": key.name, "owner": owner.pk}, follow=True
    )

    assert response.status_code == 200
    key.refresh_from_db()
    assert key.owner == owner and list(owner.api_keys.all()) == [key]
    assert '<td class="field-owner nowrap">lin</td>' in admin_client.get(LIST).content.decode()
