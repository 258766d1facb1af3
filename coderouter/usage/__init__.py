"""The usage table: one row per request (`record`), the store interface (`store`), the
writers that batch rows off the request path (`batching`, `sqlite`, `postgres` with its disk
`spool`), the schema's migrations (`schema`) and the aggregate reports (`report`)."""

from __future__ import annotations

from .record import COLUMNS, Record, row_of
from .report import (
    GROUPINGS,
    REPORT_FIELDS,
    Fetch,
    Totals,
    aggregate_query,
    parse_moment,
    period_totals_query,
    placeholders,
    report_rows,
    totals_since,
)
from .sqlite import UsageWriter, aggregate, migrate, probe_writable
from .store import DatabaseUnavailable, UsageStore

__all__ = [
    "COLUMNS", "GROUPINGS", "REPORT_FIELDS", "DatabaseUnavailable", "Fetch", "Record",
    "Totals", "UsageStore", "UsageWriter", "aggregate", "aggregate_query", "migrate",
    "parse_moment", "period_totals_query", "placeholders", "probe_writable", "report_rows",
    "row_of", "totals_since",
]
