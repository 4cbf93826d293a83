"""Load the project's SQL statements by name from ``sql/`` (shipped in the wheel as ``recsys_tasks/sql``).

Every statement lives in ``sql/<verb>_<object>.sql`` (DDL in ``sql/schema/``). A dialect-specific
variant ``<name>.<dialect>.sql`` (``postgresql``, ``sqlite``, ``duckdb``, ``mysql``; MariaDB reads the
``mysql`` files unless it has its own) wins over the portable file. Values are bound parameters
(``:name``); identifiers that come from config are written ``{{schema}}``-style placeholders and
substituted only after validation and quoting in the dialect's quotes (backticks on MySQL/MariaDB,
where a double-quoted name is a string literal).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import sqlalchemy as sa

from recsys_tasks.config import check_identifier


def _sql_root() -> Traversable:
    """``recsys_tasks/sql`` inside an installed wheel; the repository's top-level ``sql/`` in a checkout."""
    packaged = resources.files("recsys_tasks") / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "sql"


SQL_DIR: Traversable = _sql_root()
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Dialects that read another dialect's files when they have none of their own.
_DIALECT_FAMILY = {"mariadb": "mysql"}
#: Identifier quotes of the dialects that do not use the standard's double quotes.
_QUOTES = {"mysql": "`", "mariadb": "`"}


class SqlFileNotFound(FileNotFoundError):
    """No SQL file of that name exists for that dialect."""


@lru_cache(maxsize=256)
def _read(name: str, dialect: str | None) -> str:
    return sql_path(name, dialect=dialect).read_text(encoding="utf-8")


def sql_path(name: str, *, dialect: str | None = None) -> Traversable:
    """The file for statement ``name`` (``"schema/output_tables"``, ``"select_events"``)."""
    candidates = []
    for variant in (dialect, _DIALECT_FAMILY.get(dialect or "")):
        if variant:
            candidates.append(SQL_DIR.joinpath(*f"{name}.{variant}.sql".split("/")))
    candidates.append(SQL_DIR.joinpath(*f"{name}.sql".split("/")))
    for path in candidates:
        if path.is_file():
            return path
    raise SqlFileNotFound(f"no SQL file for {name!r} (looked for {', '.join(str(c) for c in candidates)})")


def load_sql(
    name: str,
    *,
    dialect: str | None = None,
    date_literals: dict[str, str] | None = None,
    **identifiers: str,
) -> str:
    """Statement text with ``{{placeholders}}`` replaced by validated, quoted identifiers.

    DDL cannot take bound parameters, so ``date_literals`` fills placeholders with ISO dates
    (``2026-01-05``) after checking them against a strict pattern.
    """
    text = _read(name, dialect)
    literals = date_literals or {}

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in literals:
            value = literals[key]
            if not _ISO_DATE.match(value):
                raise ValueError(f"{key}={value!r} is not an ISO date (YYYY-MM-DD)")
            return value
        if key not in identifiers:
            raise KeyError(f"SQL file {name!r} needs identifier {key!r}")
        return quote_identifier(identifiers[key], key=key, dialect=dialect)

    return _PLACEHOLDER.sub(substitute, text)


def statement(
    name: str,
    *,
    dialect: str | None = None,
    date_literals: dict[str, str] | None = None,
    **identifiers: str,
) -> sa.TextClause:
    """:func:`load_sql` as an executable ``sa.text`` clause (values stay bound parameters)."""
    return sa.text(load_sql(name, dialect=dialect, date_literals=date_literals, **identifiers))


def quote_identifier(value: str, *, key: str = "identifier", dialect: str | None = None) -> str:
    """``"value"`` (```value``` on MySQL/MariaDB) after checking it is a plain identifier; dotted
    ``schema.table`` is quoted per part."""
    quote = _QUOTES.get(dialect or "", '"')
    parts = value.split(".") if "." in value else [value]
    return ".".join(quote + check_identifier(p, key=key) + quote for p in parts)


def run_statement(conn: sa.Connection, stmt: str) -> sa.CursorResult:
    """Execute one SQL statement as written, with no parameters.

    Drivers with a ``%s`` paramstyle (psycopg) parse placeholders even without parameters, so a
    literal ``%`` (``format('%s', ...)``, ``LIKE 'a%'``) is escaped for them first.
    """
    return conn.exec_driver_sql(stmt.replace("%", "%%") if conn.dialect.paramstyle in ("format", "pyformat") else stmt)


def run_script(conn: sa.Connection, script: str) -> None:
    """Execute each statement of ``script`` (see :func:`run_statement`)."""
    for stmt in split_statements(script):
        run_statement(conn, stmt)


def split_statements(text: str) -> list[str]:
    """Split a script on semicolons at line ends; ``$$``-quoted bodies are kept whole."""
    statements, current, in_dollar = [], [], False
    for line in text.splitlines():
        if line.count("$$") % 2 == 1:
            in_dollar = not in_dollar
        current.append(line)
        if not in_dollar and line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip()
            if _has_code(stmt):
                statements.append(stmt)
            current = []
    tail = "\n".join(current).strip()
    if _has_code(tail):
        statements.append(tail)
    return statements


def _has_code(stmt: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in stmt.splitlines())
