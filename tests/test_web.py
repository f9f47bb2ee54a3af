"""The web's one mapping of domain errors (evalhub/web.py): pages, form errors and messages."""

from __future__ import annotations

import pytest
from django import forms
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import HttpResponse
from django.test import RequestFactory

from evalhub.errors import Conflict, NotFound, ValidationFailed
from evalhub.web import domain_error_page, form_errors, message_errors


class NameForm(forms.Form):
    name = forms.CharField()


def _request():
    request = RequestFactory().post("/")
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def test_a_refused_view_renders_the_error_page_with_the_message_at_the_errors_status():
    @domain_error_page("reports/error.html")
    def view(request, run_id):
        raise NotFound(f"No run {run_id}.")

    response = view(_request(), run_id=7)
    assert response.status_code == 404 and "No run 7." in response.content.decode()


def test_a_view_that_succeeds_is_untouched():
    @domain_error_page("reports/error.html")
    def view(request):
        return HttpResponse("fine", status=201)

    assert view(_request()).status_code == 201


def test_form_errors_put_field_problems_on_their_fields_and_the_rest_on_the_form():
    form = NameForm({"name": "x"})
    assert form.is_valid()
    reached = []
    with form_errors(form):
        raise ValidationFailed("Cannot save.", fields={"name": ["Taken."], "suite": ["Unknown suite."]})
    reached.append(True)
    assert reached == [True]
    assert form.errors["name"] == ["Taken."]
    assert form.non_field_errors() == ["Cannot save.\nsuite: Unknown suite."]


def test_message_errors_turn_a_refusal_into_a_message_for_the_next_page():
    request = _request()
    with message_errors(request):
        raise Conflict("The run is not running.")
    assert [str(m) for m in get_messages(request)] == ["The run is not running."]


def test_other_exceptions_are_not_swallowed():
    with pytest.raises(ZeroDivisionError), message_errors(_request()):
        1 / 0  # noqa: B018
