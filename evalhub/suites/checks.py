"""System checks of the suites app: the storage uploads are kept in can be set up (`manage.py check`,
and `migrate`, fail at start-up instead of the first upload answering 500)."""

from __future__ import annotations

from typing import Any

from django.core import checks


@checks.register(checks.Tags.files)
def default_storage_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.files.storage import InvalidStorageError, storages

    try:
        storages["default"]
    except (ImportError, InvalidStorageError, TypeError, ValueError) as exc:
        return [
            checks.Error(
                f"The default storage (STORAGES['default'], where uploads are kept) cannot be set up: {exc}",
                hint="Is EVALHUB_STORAGE_BACKEND a storage class that is installed, with the options it takes "
                "in EVALHUB_STORAGE_OPTIONS? For S3: pip install 'django-storages[s3]' "
                "(docs/operations.md#file-storage).",
                id="suites.E001",
            )
        ]
    return []
