"""Fixtures of the classic-API tests: a classic ``CouchDB`` and an admin client on a fresh test database."""
from __future__ import annotations

import pytest

from picas.clients import CouchDB
from picas.core import views
from picas.core.client import CouchClient


@pytest.fixture
def classic(couch_server, db_name) -> CouchDB:
    user, password = couch_server.admin
    return CouchDB(url=couch_server.url, db=db_name, username=user, password=password)


@pytest.fixture
def admin_client(couch_server, db_name) -> CouchClient:
    user, password = couch_server.admin
    return CouchClient(couch_server.url, db_name, username=user, password=password)


def deploy_views(classic: CouchDB) -> None:
    """The picas views (todo, locked, ...) in the database of ``classic``."""
    views.deploy(classic.client)
