"""The planner's statistics of the engine's tables, kept fresh where the server does not.

PostgreSQL plans a statement from its statistics of the tables (row counts, value spread), which
``ANALYZE`` gathers; autovacuum runs it on a table once its rows changed by more than
``autovacuum_analyze_threshold`` + ``autovacuum_analyze_scale_factor`` times its rows. Where
autovacuum is off (some installations ship it so, this project's development machines among
them) the statistics stay what the first ``ANALYZE`` found, or none, while the tables grow, and
plans made once are kept: a prepared statement's generic plan and the plan of each foreign key's
check (the server's own ``SELECT 1 … FOR KEY SHARE`` on the parent row), cached per connection
until the table's statistics change. A plan made while ``documents`` held twenty rows reads the
table from end to end; with it kept, every transition, outbox row or parsed form written checked
its document by a scan that grew with the table (seen: 0.1 ms per check at 2,400 documents,
eleven checks per invoice, against 0.01 ms by the primary key).

``analyze_stale`` does what autovacuum's analyze would, with the server's own thresholds, only
where autovacuum is off: the serving processes call it every
``Settings.statistics_upkeep_seconds`` (``bootstrap.Runtime``). Each ``ANALYZE`` also makes the
server plan the statements of the table again, on every connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

#: One process of the engine analyzes at a time (``pg_try_advisory_xact_lock``); the others skip.
_LOCK = 0x65696E76_73746174  # "einvstat"

#: The tables of ``tables`` whose rows changed more than autovacuum's analyze threshold since
#: their last ``ANALYZE`` (never analyzed: ``reltuples`` -1, counted as none), only while the
#: server's autovacuum is off. ``n_mod_since_analyze`` comes from the server's cumulative
#: statistics, which a backend reports at the end of its transactions (at most once a second).
_STALE = text(
    """
    SELECT c.relname
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema()
      AND c.relname = ANY(:tables)
      AND pg_has_role(c.relowner, 'USAGE')  -- only its owner may analyze a table
      AND NOT current_setting('autovacuum')::boolean
      AND s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
          + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
      AND coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity') < now() - make_interval(secs => :every)
    ORDER BY c.relname
    """
)


def analyze_stale(engine: Engine, tables: Iterable[str], *, every: float = 0.0) -> list[str]:
    """``ANALYZE`` each of ``tables`` (names in the connection's schema) that changed beyond
    autovacuum's analyze threshold since its statistics were taken, and was last analyzed at
    least ``every`` seconds ago (by the server's clock: however many processes call this, a table
    is analyzed once per ``every`` at most, as autovacuum looks at a database once per
    ``autovacuum_naptime``), when the server's autovacuum is off; the names analyzed, none when
    another process of the engine holds the upkeep's lock or the engine is not on PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return []
    names = sorted(set(tables))
    with engine.connect() as connection:
        if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK}).scalar():
            connection.commit()
            return []
        stale = list(connection.execute(_STALE, {"tables": names, "every": every}).scalars())
        quote = connection.dialect.identifier_preparer.quote
        for name in stale:
            connection.execute(text(f"ANALYZE {quote(name)}"))
        connection.commit()
    if stale:
        log.info("statistics upkeep: analyzed %s (the server's autovacuum is off)", ", ".join(stale))
    return stale
