"""The hub's start-up sweep of local servers a killed hub started but never recorded (real processes, a real sqlite)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

from binder_actors.spawners import end_unrecorded_sessions


def server_like(user: str) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "600"], env={**os.environ, "JUPYTERHUB_USER": user}, start_new_session=True)


def test_only_a_server_the_database_does_not_record_is_ended(tmp_path):
    sessions, db_file = tmp_path / "sessions", tmp_path / "jupyterhub.sqlite"
    sessions.mkdir()
    recorded, unrecorded = server_like("known"), server_like("lost")
    not_a_server = subprocess.Popen(["sleep", "600"], start_new_session=True, env={"PATH": os.environ["PATH"]})
    try:
        for name, process in (("known", recorded), ("lost", unrecorded), ("other", not_a_server)):
            (sessions / f"{name}-default.pid").write_text(str(process.pid))
        with sqlite3.connect(db_file) as db:
            db.execute("CREATE TABLE spawners (id INTEGER PRIMARY KEY, server_id INTEGER, state TEXT)")
            db.execute("INSERT INTO spawners (server_id, state) VALUES (1, ?)", (json.dumps({"pid": recorded.pid}),))
            db.execute("INSERT INTO spawners (server_id, state) VALUES (NULL, '{}')")
        assert end_unrecorded_sessions(sessions, db_file) == [unrecorded.pid]
        assert unrecorded.wait(timeout=10) == -9
        assert recorded.poll() is None and not_a_server.poll() is None
    finally:
        for process in (recorded, unrecorded, not_a_server):
            process.kill()
            process.wait()


def test_nothing_to_do_without_sessions_or_a_database(tmp_path):
    assert end_unrecorded_sessions(tmp_path / "none", tmp_path / "none.sqlite") == []
