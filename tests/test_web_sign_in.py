"""Signing in and out with Django's auth, and the page chrome a signed-in user sees."""

from django.urls import reverse

from tests.fixtures_web import PASSWORD


def test_the_sign_in_page_has_labelled_fields_and_says_how_to_get_an_account(client, db):
    response = client.get(reverse("login"))

    body = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">Username</label>' in body and '<label for="id_password">Password</label>' in body
    assert "manage.py createsuperuser" in body


def test_signing_in_lands_on_the_page_that_asked_for_it(client, user):
    response = client.post(
        reverse("login"), {"username": "ada", "password": PASSWORD, "next": reverse("job-list")}, follow=True
    )

    assert response.redirect_chain == [(reverse("job-list"), 302)]
    assert response.context["user"] == user


def test_signing_in_without_a_destination_lands_on_the_new_job_form(client, user):
    response = client.post(reverse("login"), {"username": "ada", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == reverse("job-new")


def test_a_wrong_password_is_refused_with_a_message(client, user):
    response = client.post(reverse("login"), {"username": "ada", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_header_names_the_user_and_signs_out_by_post(signed_in):
    body = signed_in.get(reverse("job-new")).content.decode()
    response = signed_in.post(reverse("logout"))

    assert f'action="{reverse("logout")}"' in body and "Sign out" in body and "(ada)" in body
    assert 'aria-current="page">New job</a>' in body
    assert ">Admin</a>" not in body
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert signed_in.get(reverse("job-new")).status_code == 302


def test_staff_see_a_link_to_the_admin(admin_client):
    assert f'<a href="{reverse("admin:index")}">Admin</a>' in admin_client.get(reverse("job-new")).content.decode()
