"""The sample tables: natively partitioned by day on Postgres, plain on SQLite.

See apps/resident/storage.py for how they are written, read and rotated. The
daily partitions themselves are created ahead by the housekeeping task
(apps.resident.tasks.resident_housekeeping); the default partition takes rows
no day holds yet, so nothing is ever refused for want of a partition.
"""

from django.db import migrations

COLUMNS = {
    "resident_window": (
        "probe_id integer NOT NULL, cluster_id integer NOT NULL, "
        "start {ts} NOT NULL, \"end\" {ts} NOT NULL, count integer NOT NULL, "
        "failures integer NOT NULL, p50_ms real NULL, p99_ms real NULL, max_ms real NULL, "
        "up boolean NOT NULL, errors {json} NULL",
        "start",
    ),
    "resident_batch": (
        "probe_id integer NOT NULL, batch_id {uuid} NOT NULL, first_start {ts} NOT NULL, "
        "received_at {ts} NOT NULL, PRIMARY KEY (probe_id, batch_id, first_start)",
        "first_start",
    ),
    "resident_minute": (
        "probe_id integer NOT NULL, cluster_id integer NOT NULL, minute {ts} NOT NULL, "
        "count bigint NOT NULL, failures bigint NOT NULL, p50_sum double precision NOT NULL, "
        "p99_sum double precision NOT NULL, max_ms real NULL, "
        "PRIMARY KEY (probe_id, cluster_id, minute)",
        "minute",
    ),
}


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    types = (
        {"ts": "timestamptz", "json": "jsonb", "uuid": "uuid"}
        if postgres
        else {"ts": "datetime", "json": "text", "uuid": "char(32)"}
    )
    for table, (columns, key) in COLUMNS.items():
        body = columns.format(**types)
        if postgres:
            schema_editor.execute(f"CREATE TABLE {table} ({body}) PARTITION BY RANGE ({key})")
            schema_editor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        else:
            schema_editor.execute(f"CREATE TABLE {table} ({body})")
    # Series and alert reads: one probe (and cluster) over a time range.
    schema_editor.execute(
        "CREATE INDEX resident_window_probe ON resident_window (probe_id, cluster_id, start)"
    )
    # Alert judging and the overview: every probe's windows since a moment.
    schema_editor.execute("CREATE INDEX resident_window_start ON resident_window (start)")


def drop(apps, schema_editor):
    for table in COLUMNS:
        schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = [("resident", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
