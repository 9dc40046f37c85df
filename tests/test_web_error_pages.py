"""The web UI's own 404 page (its look, its navigation, a way back), not Django's."""


def test_a_missing_page_is_the_uis_404_with_a_way_back(client, db):
    response = client.get("/no/such/page/")

    body = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in body and "<code>/no/such/page/</code>" in body
    assert 'href="/"' in body and "barksite.css" in body


def test_a_signed_in_user_sees_the_404_inside_the_usual_navigation(signed_in):
    response = signed_in.get("/jobs/00000000-0000-0000-0000-000000000000/")

    body = response.content.decode()
    assert response.status_code == 404 and "Page not found" in body and "Sign out" in body
