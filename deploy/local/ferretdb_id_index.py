"""Adds the index FerretDB 1.24's SQLite backend needs for lookups by _id (ADR 0005).

FerretDB creates each collection's unique index on ``_ferretdb_sjson->"_id"`` but looks
documents up with ``WHERE _ferretdb_sjson->'$._id' = ?``. SQLite matches expression indexes by
their text, so that lookup never uses the index: every find, update and delete by _id scans the
whole table and parses each document's JSON. This keeper adds a plain index on the expression
the lookups use, in every collection table of every database file, and keeps doing so for
collections created later. It changes nothing else: FerretDB's own index still enforces _id
uniqueness, and FerretDB does not know or care about the extra index.

Usage: ferretdb_id_index.py DIR [--every SECONDS]   (stdlib only; runs beside FerretDB)"""

import argparse
import contextlib
import sqlite3
import sys
import time
from pathlib import Path

LOOKUP = "_ferretdb_sjson->'$._id'"  # what FerretDB's SQLite backend filters on
SUFFIX = "__id_lookup"


def index_database(path: Path) -> int:
    """Add the lookup index to every collection table of one database file; returns how many
    were added."""
    added = 0
    with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        # FerretDB's own tables start with "_ferretdb_", SQLite's with "sqlite_".
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        for table in tables:
            if table + SUFFIX in indexes:
                continue
            try:
                db.execute(f'CREATE INDEX IF NOT EXISTS "{table}{SUFFIX}" ON "{table}" ({LOOKUP})')
                added += 1
            except sqlite3.OperationalError as exc:  # dropped meanwhile, or locked for 30 s
                print(f"{path.name} {table}: {exc}", file=sys.stderr)
    return added


def index_directory(directory: Path, seen: dict[Path, float]) -> int:
    """Index the database files that changed since the last pass (by modification time)."""
    added = 0
    for path in sorted(directory.glob("*.sqlite")):
        wal = path.with_name(path.name + "-wal")
        try:
            changed = max(path.stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)
        except FileNotFoundError:  # database dropped meanwhile
            continue
        if seen.get(path) == changed:
            continue
        try:
            added += index_database(path)
        except sqlite3.DatabaseError as exc:
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        seen[path] = changed
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--every", type=float, default=0, help="keep watching, every N seconds")
    args = parser.parse_args()
    seen: dict[Path, float] = {}
    while True:
        if added := index_directory(args.directory, seen):
            print(f"added the _id lookup index to {added} collection(s)", flush=True)
        if not args.every:
            return
        time.sleep(args.every)


if __name__ == "__main__":
    main()
