"""A node's HOME folder: its configuration, keys, database and audit log, opened together.

``Home`` is what every command and the running server work on. It opens one SQLite
connection per thread, and one for the calls the server serves one at a time; a write goes
through ``home.change()``, which opens a transaction and hands out the audit log so the
state change and its entry commit together.
"""

from __future__ import annotations

import contextvars
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from node.audit import AuditLog, now_ms
from node.config import Config
from node.errors import AlreadyExists, InvalidHome
from node.identity import NodeCard, NodeKeys, SignedCard
from node.store.db import connect, migrate, transaction

CONFIG_FILE = "config.toml"
KEY_FILE = "node.key"
DB_FILE = "node.db"


@dataclass
class Change:
    """What a write transaction hands out: the connection and the audit log."""

    conn: sqlite3.Connection
    audit: AuditLog


class Home:
    def __init__(self, path: Path, config: Config, keys: NodeKeys):
        self.path = path
        self.config = config
        self.keys = keys
        self.node_id = keys.node_id
        self._lock = threading.RLock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._call_slot = threading.Lock()
        self._call_conn: sqlite3.Connection | None = None
        from node.checkpoints import Checkpointer  # late: checkpoints need the open home
        self.checkpointer = Checkpointer(self)

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection of the call being served (:meth:`serving_call`), else this
        thread's own: WAL lets threads read while one of them writes."""
        serving = _SERVING.get()
        if serving is not None and serving[0] is self:
            return serving[1]
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open_connection()
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        """A new connection to the database, closed with the home."""
        conn = connect(self.path / DB_FILE)
        with self._lock:
            self._connections.append(conn)
        return conn

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.conn, self.node_id, self.checkpointer.after_append)

    # ---- creation and opening --------------------------------------------------------
    @classmethod
    def init(cls, path: Path, config: Config) -> Home:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise AlreadyExists(f"{path} already exists and is not an empty folder")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = NodeKeys.generate()
        keys.save(path / KEY_FILE)
        (path / CONFIG_FILE).write_text(config.to_toml(), "utf-8")
        conn = connect(path / DB_FILE)
        migrate(conn)
        conn.close()
        home = cls(path, config, keys)
        with home.change() as change:
            change.conn.execute("INSERT INTO node_meta (key, value) VALUES ('card_issued_at', ?)",
                                (str(now_ms()),))
            change.audit.append("node.initialised", {
                "node_id": home.node_id, "name": config.name, "domain": config.domain,
                "signing_key": home.card().signing_key})
        return home

    @classmethod
    def open(cls, path: Path) -> Home:
        if not path.is_dir():
            raise InvalidHome(f"{path} is not a trustspace home; create one with "
                              "'trustspace init'")
        config = Config.load(path / CONFIG_FILE)
        if not (path / KEY_FILE).exists() or not (path / DB_FILE).exists():
            raise InvalidHome(f"{path} is missing its key or database; it is not a complete "
                              "trustspace home")
        keys = NodeKeys.load(path / KEY_FILE)
        try:
            conn = connect(path / DB_FILE)
            try:
                migrate(conn)
            finally:
                conn.close()
        except sqlite3.OperationalError as e:  # locked, unreadable, a migration that failed
            raise InvalidHome(f"cannot open the database {path / DB_FILE}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise InvalidHome(f"{path / DB_FILE} is damaged or not a trustspace database "
                              f"({e})") from None
        return cls(path, config, keys)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._call_conn = None

    def serving_call(self) -> _ServingCall:
        """The node's call slot: one holder at a time, on whichever thread, and every holder
        uses the slot's one connection, whose page cache stays warm from call to call
        (connector/serial_calls.py)."""
        return _ServingCall(self)

    # ---- writes ----------------------------------------------------------------------
    def change(self) -> _Transaction:
        """A write transaction with the audit log; serialised within this process.

        The log handed out belongs to this transaction alone (it keeps its last entry and
        the latest checkpoint in memory) and refuses appends once the transaction ends.
        """
        return _Transaction(self)

    def record(self, kind: str, body: dict[str, object]) -> None:
        """An audit entry that is itself the whole change (e.g. a refused call)."""
        with self.change() as change:
            change.audit.append(kind, dict(body))

    # ---- identity --------------------------------------------------------------------
    def card(self) -> NodeCard:
        row = self.conn.execute(
            "SELECT value FROM node_meta WHERE key = 'card_issued_at'").fetchone()
        issued_at = int(row[0]) if row else 0
        return NodeCard(self.node_id, self.config.name, self.config.domain, self.config.listen,
                        *_public_keys(self.keys), issued_at)

    def signed_card(self) -> SignedCard:
        return SignedCard.create(self.keys, self.card())


_SERVING: contextvars.ContextVar[tuple[Home, sqlite3.Connection] | None] = \
    contextvars.ContextVar("serving_call", default=None)


class _ServingCall:
    """``Home.serving_call()``: the call slot's lock, and its connection lent to the holder."""

    __slots__ = ("_home", "_token")

    def __init__(self, home: Home) -> None:
        self._home = home

    def __enter__(self) -> None:
        home = self._home
        home._call_slot.acquire()
        try:
            if home._call_conn is None:
                home._call_conn = home._open_connection()
            self._token = _SERVING.set((home, home._call_conn))
        except BaseException:
            home._call_slot.release()
            raise

    def __exit__(self, *exc: object) -> None:
        _SERVING.reset(self._token)
        self._home._call_slot.release()


class _Transaction:
    """``Home.change()``: the process lock, then one write transaction with the audit log."""

    __slots__ = ("_home", "_transaction", "_audit", "_checkpoints")

    def __init__(self, home: Home) -> None:
        self._home = home

    def __enter__(self) -> Change:
        home = self._home
        home._lock.acquire()
        try:
            self._transaction = transaction(home.conn)
            conn = self._transaction.begin()
        except BaseException:
            home._lock.release()
            raise
        self._checkpoints = home.checkpointer.for_transaction()
        self._audit = AuditLog(conn, home.node_id, self._checkpoints, one_transaction=True)
        return Change(conn, self._audit)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._audit.close()
            self._transaction.end(commit=kind is None)
            if kind is None:
                self._checkpoints.committed()
        finally:
            self._home._lock.release()


def _public_keys(keys: NodeKeys) -> tuple[str, str]:
    from node.canonical import b64
    return b64(keys.verify_key), b64(bytes(keys.box.public_key))


def home_path(text: str) -> Path:
    return Path(os.path.expanduser(text)).resolve()
