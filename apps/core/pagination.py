from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


def _positive(request: Request, param: str) -> int | None:
    raw = request.query_params.get(param)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError(
            {param: [_("Must be a positive whole number, not %(raw)s.") % {"raw": repr(raw)}]}
        )
    return value


class Pagination(PageNumberPagination):
    """Page numbers and sizes that are not positive whole numbers are a 400 naming the
    parameter (DRF would use the default size, or answer 404); a size over the maximum
    is cut to it, and a page past the last is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        size = _positive(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        if request.query_params.get(self.page_query_param) not in self.last_page_strings:
            _positive(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)
