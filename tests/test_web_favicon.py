"""The favicon: pages link the SVG, and /favicon.ico (asked for by browsers regardless) leads to it."""

from django.contrib.staticfiles import finders


def test_pages_link_the_favicon_and_favicon_ico_redirects_to_it(client, db):
    login_page = client.get("/accounts/login/").content.decode()
    admin_login = client.get("/admin/login/").content.decode()
    ico = client.get("/favicon.ico")

    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert link in login_page and link in admin_login
    assert ico.status_code == 301 and ico["Location"] == "/static/favicon.svg"
    assert finders.find("favicon.svg")
