"""Passwords go through AUTH_PASSWORD_VALIDATORS wherever a user is created."""

from __future__ import annotations

import pytest

from evalhub.accounts.services import user_create
from evalhub.errors import ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("password", ["short1", "1234567890123", "password1234", "alice-smith-x"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationFailed) as caught:
        user_create(username="alice-smith", password=password)
    assert "password" in caught.value.fields


def test_a_good_password_is_accepted_and_hashed(db):
    user = user_create(username="alice", password="correct-horse-battery")
    assert user.check_password("correct-horse-battery") and "correct-horse" not in user.password
