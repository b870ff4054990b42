"""The metrics import's CSV path on PostgreSQL: the file's bytes go straight into ``COPY … (FORMAT csv)``.

Parsing a million rows in Python costs more than everything PostgreSQL does with them, so here Python only
streams the file. Steps, inside the import's transaction:

1. the header is read here and mapped (``column_map``); the rest of the file is COPYed into a temporary table of
   text columns, numbered in file order (line = number + 1 when no quoted field spans lines);
2. one ``INSERT … SELECT`` types the clean rows (plain digits, ISO dates checked against a calendar, the same
   plausibility rules as ``fast_parser``) into the import's stage;
3. the rows it did not take come back to Python and go through ``parse_row``, which accepts what it can
   ("1,000", "$5.50") and explains the rest with their line numbers.

A file COPY cannot read (ragged rows, a blank line, bytes that are not UTF-8) is rolled back to a savepoint and
``stage_csv`` answers False: the caller then parses it in Python, which reports such rows one by one.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geminivideo.ml.metrics_import import (
    BATCH_ROWS,
    STAGE,
    STAGE_COLUMNS,
    ImportReport,
    StageRow,
    _Bad,
    _Stage,
    column_map,
    parse_row,
)

log = logging.getLogger(__name__)

RAW = "metrics_import_raw"
BLOCK_BYTES = 1 << 20
_INT = "'^[0-9]{1,15}$'"
_NUM = r"'^[0-9]{1,15}(\.[0-9]{1,12})?$'"
_WS = r"E' \t\r\n'"


def stage_csv(stage: _Stage, path: Path, report: ImportReport, skip: bool,
              progress: Callable[[int, int], None] | None) -> bool:
    """Stage ``path`` through COPY; False (nothing staged) when COPY cannot read the file."""
    with open(path, "rb") as handle:
        header_line = handle.readline().decode("utf-8-sig")
        header = next(csv.reader([header_line]), [])
        if not header:
            return True
        columns = column_map(header)
        names = [f"c{i}" for i in range(len(header))]
        stage.sql(f"CREATE TEMP TABLE {RAW} (seq bigserial, {', '.join(n + ' text' for n in names)}) ON COMMIT DROP")
        if not _copy(stage, handle, names, path.stat().st_size, progress):
            return False
    typed = _insert_clean(stage, columns)
    _parse_the_rest(stage, columns, len(header), report, skip)
    report.rows_read += typed
    stage.sql(f"DROP TABLE {RAW}")
    return True


def _copy(stage: _Stage, handle: Any, names: list[str], total: int,
          progress: Callable[[int, int], None] | None) -> bool:
    import psycopg

    raw: Any = stage.session.connection().connection.driver_connection
    done = handle.tell()
    with raw.cursor() as cursor:
        cursor.execute("SAVEPOINT metrics_raw_copy")
        try:
            with cursor.copy(f"COPY {RAW} ({', '.join(names)}) FROM STDIN (FORMAT csv)") as copy:
                while block := handle.read(BLOCK_BYTES):
                    copy.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except psycopg.Error as exc:
            log.info("metrics import: COPY cannot read the file as it is (%s); parsing it row by row",
                     str(exc).splitlines()[0])
            cursor.execute("ROLLBACK TO SAVEPOINT metrics_raw_copy")
            return False
        cursor.execute("RELEASE SAVEPOINT metrics_raw_copy")
    return True


def _col(columns: dict[str, int], field: str) -> str:
    """The raw column of ``field``, '' or NULL read as NULL; NULL when the file has no such column."""
    return f"NULLIF(r.c{columns[field]}, '')" if field in columns else "NULL::text"


def _insert_clean(stage: _Stage, columns: dict[str, int]) -> int:
    ad, day, imp, clk, spend = (_col(columns, f) for f in ("ad_id", "day", "impressions", "clicks", "spend"))
    reach, freq, conv, budget, end = (_col(columns, f) for f in ("reach", "frequency", "conversions", "budget",
                                                                   "day_end"))
    campaign = f"coalesce({_col(columns, 'campaign_id')}, {_col(columns, 'campaign_name')}, '')"
    name = _col(columns, "ad_name")
    typed = f"""
        SELECT r.seq + 1 AS line, {ad} AS ad_id, cal.d AS day, {end} AS day_end, cal.t AS day_text,
               CASE WHEN {imp} ~ {_INT} THEN {imp}::bigint END AS impressions,
               CASE WHEN {clk} ~ {_INT} THEN {clk}::bigint END AS clicks,
               CASE WHEN {spend} ~ {_NUM} THEN {spend}::float8 END AS spend,
               {reach} AS reach_text, CASE WHEN {reach} ~ {_INT} THEN {reach}::bigint END AS reach,
               {freq} AS freq_text, CASE WHEN {freq} ~ {_NUM} THEN {freq}::float8 END AS frequency,
               {conv} AS conv_text, CASE WHEN {conv} ~ {_INT} THEN {conv}::bigint END AS conversions,
               {budget} AS budget_text, CASE WHEN {budget} ~ {_NUM} THEN {budget}::float8 END AS budget,
               left(btrim({campaign}, {_WS}), 128) AS campaign, left(btrim(coalesce({name}, ''), {_WS}), 256) AS name
        FROM {RAW} r LEFT JOIN cal ON cal.t = {day}"""
    clean = """
        ad_id IS NOT NULL AND ad_id = btrim(ad_id, E' \\t\\r\\n') AND length(ad_id) <= 128 AND day IS NOT NULL
        AND (day_end IS NULL OR day_end = day_text)
        AND impressions IS NOT NULL AND clicks IS NOT NULL AND spend IS NOT NULL AND clicks <= impressions
        AND (reach_text IS NULL OR (reach IS NOT NULL AND reach <= impressions))
        AND (freq_text IS NULL OR frequency IS NOT NULL) AND (conv_text IS NULL OR conversions IS NOT NULL)
        AND (budget_text IS NULL OR budget IS NOT NULL)"""
    result = stage.sql(f"""
        WITH cal AS (SELECT to_char(g, 'YYYY-MM-DD') AS t, g::date AS d
                     FROM generate_series(date '1970-01-01', date '2100-12-31', interval '1 day') AS g)
        INSERT INTO {STAGE} ({', '.join(STAGE_COLUMNS)})
        SELECT line, ad_id, day, impressions, reach, frequency, clicks, spend, coalesce(conversions, 0), budget,
               CASE WHEN campaign = '' THEN 'unassigned' ELSE campaign END,
               CASE WHEN name = '' THEN ad_id ELSE name END
        FROM ({typed}) AS x WHERE {clean}""")
    return int(getattr(result, "rowcount", 0) or 0)


def _parse_the_rest(stage: _Stage, columns: dict[str, int], width: int, report: ImportReport, skip: bool) -> None:
    """Rows the typed insert left out: parsed (or explained) by ``parse_row``, in file order."""
    names = ", ".join(f"r.c{i}" for i in range(width))
    rest = stage.sql(f"SELECT r.seq + 1, {names} FROM {RAW} r LEFT JOIN {STAGE} s ON s.line = r.seq + 1 "
                     "WHERE s.line IS NULL ORDER BY r.seq")
    batch: list[StageRow] = []
    for line, *cells in rest:
        values = ["" if c is None else c for c in cells]
        if not any(v.strip() for v in values):
            continue
        report.rows_read += 1
        try:
            parsed = parse_row(int(line), {f: values[i] for f, i in columns.items()})
        except _Bad as exc:
            report.add_error(int(line), str(exc))
            continue
        if skip or not report.bad_rows:
            batch.append(parsed)
        if len(batch) >= BATCH_ROWS:
            stage.write(batch)
            batch = []
    stage.write(batch)
