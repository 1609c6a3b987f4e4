"""A small SQLite database standing in for the application's relational database."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class UserDB:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        self.queries = 0

    def add(self, user_id: int, name: str) -> None:
        self.conn.execute("INSERT INTO users (id, name) VALUES (?, ?)", (user_id, name))

    def get(self, user_id: int) -> dict[str, object] | None:
        self.queries += 1
        row = self.conn.execute("SELECT id, name FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else {"id": row[0], "name": row[1]}

    def rename(self, user_id: int, name: str) -> dict[str, object]:
        """Raises sqlite3.IntegrityError when the name is taken (a real constraint failure)."""
        with self.conn:
            self.conn.execute("BEGIN")
            cursor = self.conn.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))
            if cursor.rowcount != 1:
                raise LookupError(user_id)
        return {"id": user_id, "name": name}

    def close(self) -> None:
        self.conn.close()
