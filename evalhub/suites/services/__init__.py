"""Writes for suites, by concern: reading a file (`scanning`), PII decisions (`pii`), importing a
version (`imports`), uploads through the API and the web (`uploads`), versions once made
(`versions`), and the staging folder (`storage`).

Every path (web, API, CLI, demo) goes through `imports.suite_import`: a pass reads and validates
the file (in a limited process when large), the valid cases are screened for PII and spooled to a
scratch file outside any transaction; if anything is wrong (unless the uploader chose to import
only the valid rows) nothing is stored. Otherwise one short transaction inserts the spooled cases
in batches, makes the next version with its diff and writes the audit events. The names below are
the package's interface; import them from here.
"""

from evalhub.suites.services.imports import (
    ImportChoices,
    Imported,
    suite_import,
    suite_import_file,
    suite_import_path,
)
from evalhub.suites.services.pii import PII_ACTIONS, PII_FIELDS, screening_in_process
from evalhub.suites.services.scanning import ImportOptions, ScanReport, problems_error, read_file, scan_file
from evalhub.suites.services.uploads import (
    background_rows,
    reads_in_background,
    suite_import_cases,
    suite_import_upload,
    suite_upload_check,
    suite_upload_confirm,
    suite_upload_discard,
    suite_upload_fail,
    suite_upload_import,
    suite_upload_purge,
    suite_upload_read,
    suite_upload_remap,
    suite_upload_screen,
    suite_upload_stage,
    suite_upload_submit,
)
from evalhub.suites.services.versions import EDITABLE, case_update, suite_version_delete, suite_version_lock

__all__ = [
    "EDITABLE",
    "PII_ACTIONS",
    "PII_FIELDS",
    "ImportChoices",
    "ImportOptions",
    "Imported",
    "ScanReport",
    "background_rows",
    "case_update",
    "problems_error",
    "read_file",
    "reads_in_background",
    "scan_file",
    "screening_in_process",
    "suite_import",
    "suite_import_cases",
    "suite_import_file",
    "suite_import_path",
    "suite_import_upload",
    "suite_upload_check",
    "suite_upload_confirm",
    "suite_upload_discard",
    "suite_upload_fail",
    "suite_upload_import",
    "suite_upload_purge",
    "suite_upload_read",
    "suite_upload_remap",
    "suite_upload_screen",
    "suite_upload_stage",
    "suite_upload_submit",
    "suite_version_delete",
    "suite_version_lock",
]
