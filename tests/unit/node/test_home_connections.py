"""Which SQLite connection a Home hands out: each thread its own, and inside the call slot
(``Home.serving_call``) the slot's one connection, whichever thread holds it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from node.config import Config
from node.home import Home


def _home(tmp_path: Path) -> Home:
    return Home.init(tmp_path / "node", Config(name="node", domain="data.qingdao",
                                               listen="127.0.0.1:7001"))


def test_the_call_slot_lends_one_connection_to_every_thread_that_holds_it(
        tmp_path: Path) -> None:
    home = _home(tmp_path)

    def in_slot() -> int:
        with home.serving_call():
            home.conn.execute("SELECT count(*) FROM audit_entries").fetchone()
            return id(home.conn)

    def outside() -> int:
        return id(home.conn)

    with ThreadPoolExecutor(max_workers=2) as pool:
        lent = {pool.submit(in_slot).result() for _ in range(4)}
        own = {pool.submit(outside).result() for _ in range(4)}
    assert len(lent) == 1 and not lent & own and id(home.conn) not in lent
    home.close()


def test_one_thread_at_a_time_holds_the_call_slot(tmp_path: Path) -> None:
    home = _home(tmp_path)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with home.serving_call():
            inside.set()
            assert release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    entered = threading.Event()

    def enter_then_leave() -> None:
        with home.serving_call():
            entered.set()

    second = threading.Thread(target=enter_then_leave)
    second.start()
    assert not entered.wait(0.3)  # waits while the slot is held
    release.set()
    assert entered.wait(10)
    holder.join()
    second.join()
    home.close()


def test_a_closed_home_lends_a_new_connection_to_the_next_call(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with home.serving_call():
        home.conn.execute("SELECT 1").fetchone()
    home.close()
    with home.serving_call():  # not the closed one
        assert home.conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0] > 0
    home.close()
