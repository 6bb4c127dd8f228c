"""Creating the PostgreSQL schema once, whoever starts first.

eventsourcing's PostgreSQL recorders create their tables at start-up with ``CREATE ... IF NOT
EXISTS`` (types in transactions of their own, then ``CREATE OR REPLACE FUNCTION``). Two processes
starting at once (``serve --workers 3``, two CLI commands) race on those statements: on a fresh
database one of them dies of a unique violation in ``pg_type``, and on an existing one ``CREATE OR
REPLACE FUNCTION`` run twice at once fails with "tuple concurrently updated". Even alone, the
``CREATE INDEX IF NOT EXISTS`` waits behind a long import that holds the log's table lock.

:class:`SchemaOnce` makes ``create_table`` of a recorder take one transaction-scoped advisory
lock (the same key for every recorder of the ledger), look whether every table, index, type and
function its statements would create is already there, and run the statements only when
something is missing, all in that one transaction. Looking costs no table lock, so a server
starts while an import holds the log.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from psycopg.sql import Composed

__all__ = ["SCHEMA_LOCK_KEY", "SchemaOnce", "created_object", "table_exists"]

# pg_advisory_xact_lock key serializing schema creation in a ledger's database (an arbitrary
# 63-bit constant: "pledger schema" hashed, so that other applications' keys will not clash).
SCHEMA_LOCK_KEY = 0x5A3C_91E2_7B44_0D18

_NAME = r'((?:"[^"]+"|\w+)(?:\.(?:"[^"]+"|\w+))?)'
_RELATION = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+{_NAME}", re.IGNORECASE
)
_TYPE = re.compile(rf"^\s*CREATE\s+TYPE\s+{_NAME}", re.IGNORECASE)
_FUNCTION = re.compile(rf"^\s*CREATE\s+OR\s+REPLACE\s+FUNCTION\s+{_NAME}\s*\(", re.IGNORECASE)


def created_object(statement: str) -> tuple[str, str]:
    """What a schema statement creates: ``("relation" | "type" | "function", qualified name)``.

    Raises ValueError for a statement of another form, so that a new kind of statement cannot
    be skipped without being looked for.
    """
    for kind, pattern in (("relation", _RELATION), ("type", _TYPE), ("function", _FUNCTION)):
        found = pattern.match(statement)
        if found:
            return kind, found.group(1)
    msg = f"not a CREATE statement the schema check knows: {statement[:80]!r}"
    raise ValueError(msg)


_EXISTS = {
    "relation": "SELECT to_regclass(%s) IS NOT NULL AS there",
    "type": "SELECT to_regtype(%s) IS NOT NULL AS there",
    "function": "SELECT to_regproc(%s) IS NOT NULL AS there",
}


def _exists(curs: Any, kind: str, name: str) -> bool:
    curs.execute(_EXISTS[kind], (name,))
    row = curs.fetchone()
    return bool(row["there"])


def table_exists(curs: Any, name: str) -> bool:
    """Whether the relation ``name`` (``schema.table``, quoted where it needs) exists."""
    return _exists(curs, "relation", name)


class SchemaOnce:
    """Mixin for eventsourcing's PostgreSQL recorders: ``create_table`` serialized by an
    advisory lock and skipped when everything is there (see the module's docstring). Put it
    before the library's recorder among the bases."""

    datastore: Any
    sql_create_statements: list[Composed]

    if TYPE_CHECKING:

        def _create_table(self, curs: Any) -> None: ...  # the library's recorder's

    def create_table(self) -> None:
        """Create what is missing of this recorder's tables, types and functions, in one
        transaction under the schema lock; nothing when all of it is there.

        Raises eventsourcing's PersistenceError subclasses, as the library's own does.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            objects = [created_object(s.as_string()) for s in self.sql_create_statements]
            missing = {i for i, (kind, name) in enumerate(objects) if not _exists(curs, kind, name)}
            self._schema_found(curs, complete=not missing)
            if missing:
                # Types first (the insert function names one), then the library's own
                # creation of everything else, which runs every statement but the types.
                for i in sorted(missing):
                    if objects[i][0] == "type":
                        curs.execute(self.sql_create_statements[i], prepare=False)
                self._create_table(curs)
        self.datastore.register_type_adapters()

    def _schema_found(self, curs: Any, *, complete: bool) -> None:
        """Told, under the lock and before any creation, whether the schema is complete."""
