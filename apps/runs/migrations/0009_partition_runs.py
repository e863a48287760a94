"""Postgres: turn runs_proberun into a table partitioned by RANGE (id).

The existing table, rows and indexes included, becomes partition 0 (ids
below STRIDE): nothing is copied, its indexes are adopted by the new table's
partitioned indexes, and the only scan is ATTACH's check of the id range.
Foreign keys that pointed at the old table are pointed at the new one.
Partition 1 is created ahead. Other databases keep one table (no-op).
This copies its constants and SQL so that later changes to
apps/runs/partitions.py cannot change what this migration did.
"""

from typing import Any

from django.db import migrations

TABLE = "runs_proberun"
OLD = "runs_proberun_p00000"
SEQUENCE = "runs_proberun_id_seq"
STRIDE = 10**10


def _rows(cur: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    cur.execute(sql, params)
    return list(cur.fetchall())


def partition(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cur:
        cur.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")
        next_id = int(cur.fetchone()[0]) + 1
        # Identity columns cannot be attached as a partition (Postgres 15): a plain
        # sequence owned by the new table's id takes over the numbering.
        cur.execute(
            "SELECT attidentity, pg_get_serial_sequence(%s, 'id') FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = 'id'",
            [TABLE, TABLE],
        )
        identity, serial = cur.fetchone()
        if identity:  # Django's BigAutoField; its sequence goes with it
            cur.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP IDENTITY")
        else:  # a serial column (older Django)
            cur.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP DEFAULT")
            if serial:
                cur.execute(f"DROP SEQUENCE {serial}")
        # Index and constraint definitions, before the names move to the new table.
        indexes = _rows(
            cur,
            "SELECT i.relname, pg_get_indexdef(i.oid), x.indisprimary,"
            " x.indisunique FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = %s::regclass",
            [TABLE],
        )
        outgoing = _rows(
            cur,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        incoming = _rows(
            cur,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE confrelid = %s::regclass AND contype = 'f'"
            " AND conrelid <> confrelid",
            [TABLE],
        )
        cur.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        for name, _, primary, _ in indexes:
            new = f"{OLD}_pkey" if primary else f"{name[:50]}_p00000"
            cur.execute(f'ALTER INDEX "{name}" RENAME TO "{new}"')
        cur.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING STORAGE) PARTITION BY RANGE (id)"
        )
        cur.execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
        cur.execute("SELECT setval(%s, %s, false)", [SEQUENCE, next_id])
        cur.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        cur.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        for name, definition, primary, unique in indexes:
            if primary or unique:  # the key above; idempotency keys: per partition
                continue
            head, _, rest = definition.partition(" USING ")
            cur.execute(f'CREATE INDEX "{name}" ON {TABLE} USING {rest}')
        for name, definition in outgoing:
            cur.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
        # Adopts the old table's matching indexes and foreign keys.
        cur.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {OLD} FOR VALUES FROM (MINVALUE) TO ({STRIDE})"
        )
        for table, name, definition in incoming:
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            cur.execute(
                f'ALTER TABLE {table} ADD CONSTRAINT "{name}" '
                + definition.replace(f"REFERENCES {OLD}(", f"REFERENCES {TABLE}(")
            )
        cur.execute(
            f"CREATE TABLE {TABLE}_p00001 PARTITION OF {TABLE}"
            f" FOR VALUES FROM ({STRIDE}) TO ({2 * STRIDE})"
        )
        cur.execute(f"CREATE UNIQUE INDEX {TABLE}_p00001_idem ON {TABLE}_p00001 (idempotency_key)")
    RunPartition = apps.get_model("runs", "RunPartition")
    RunPartition.objects.bulk_create(
        [RunPartition(number=0), RunPartition(number=1)], ignore_conflicts=True
    )


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("runs", "0008_rollups_partitions")]

    operations = [
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
