import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_page_renders_for_anonymous(client):
    # when
    response = client.get(reverse("login"))
    # then
    assert response.status_code == 200
    assert b"Log in" in response.content
