"""The API's JSON parser (DEFAULT_PARSER_CLASSES). Its own module: DRF reads that setting while
`rest_framework.views` is imported, which `evalhub.api` itself imports."""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from evalhub.untrusted import json_loads, unstorable


class StrictJSONParser(parsers.JSONParser):
    """JSON bodies holding only values the database and our renderers accept.

    A NUL character, an unpaired surrogate, NaN or Infinity, or an integer Python cannot print is
    refused here with a 400 naming its place (`cases[3].input`), instead of failing deep inside a
    service or the database as a 500. Nesting too deep to parse is a 400 as well.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json_loads(codecs.getreader(encoding)(stream).read())
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc
        found = unstorable(data)
        if found is not None:
            where, reason = found
            raise exceptions.ValidationError({where or "non_field_errors": [f"This value {reason}."]})
        return data
