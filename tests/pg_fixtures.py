"""A real PostgreSQL for the test session (pytest plugin: ``pytest_plugins = ["tests.pg_fixtures"]``).

pytest-postgresql's ``postgresql_proc`` runs Debian's binaries (``/usr/lib/postgresql/15/bin``, or
``$SPECBENCH_PG_BIN``); without them the tests that need it skip with one line.  PostgreSQL refuses
to run as root and pytest-postgresql does not switch users, so its ``pg_ctl`` is a wrapper that,
as root, runs the real one as an unprivileged user (``$SPECBENCH_PG_USER``, default ``postgres``):
it hands that user the fixture's own temp folder and gives the folders above it search
permission (``o+x``: enter, not list).  As a normal user the wrapper just runs ``pg_ctl``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_postgresql import factories

PG_BIN = Path(os.environ.get("SPECBENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = os.environ.get("SPECBENCH_PG_USER", "postgres")
WRAPPER = Path(tempfile.gettempdir()) / f"specbench-pg_ctl-{os.getpid()}.sh"

WRAPPER_TEXT = f"""#!/bin/bash
# pg_ctl for pytest-postgresql; as root, as {PG_USER} (PostgreSQL refuses root). Written by tests/pg_fixtures.py.
set -e
cd /
if [ "$(id -u)" != 0 ]; then exec "{PG_BIN}/pg_ctl" "$@"; fi
args=("$@")
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in -D|--pgdata) data=${{args[i+1]}} ;; esac
done
if [ -n "${{data:-}}" ]; then
  top=$(dirname "$data")                      # this fixture's own temp folder (data dir and log)
  chown "{PG_USER}" "$top"
  [ -d "$data" ] && chown -R "{PG_USER}" "$data"
  up=$top
  while [ "$up" != / ]; do up=$(dirname "$up"); chmod o+x "$up" 2>/dev/null || true; done
fi
exec runuser -u "{PG_USER}" -- "{PG_BIN}/pg_ctl" "$@"
"""

specbench_pg_proc = factories.postgresql_proc(executable=str(WRAPPER), host="127.0.0.1", port=None,
                                              user="postgres", dbname="specbench_tests")


@dataclass
class PgServer:
    """The session's server: trust authentication on 127.0.0.1, superuser ``postgres``."""

    host: str
    port: int
    user: str

    def database(self, name: str) -> str:
        """A fresh database ``name`` (dropped first if a test made it before); its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"


def missing_reason() -> str | None:
    """Why there is no PostgreSQL here, in one line (None: there is)."""
    if not (PG_BIN / "pg_ctl").is_file():
        return f"no PostgreSQL binaries in {PG_BIN} (scripts/setup.sh installs Debian's postgresql)"
    if os.getuid() == 0:
        import pwd

        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no user '{PG_USER}' to run PostgreSQL as (SPECBENCH_PG_USER)"
    return None


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The session's PostgreSQL (started on first use, stopped by pytest-postgresql at the end)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    WRAPPER.write_text(WRAPPER_TEXT)
    WRAPPER.chmod(0o755)
    # Removed after every fixture's teardown: pytest-postgresql stops the server through it.
    request.config.add_cleanup(lambda: WRAPPER.unlink(missing_ok=True))
    proc = request.getfixturevalue("specbench_pg_proc")
    yield PgServer(proc.host, int(proc.port), proc.user)
