"""Persistent database connections are checked at the start of each request without a round
trip to PostgreSQL, and a connection the server has ended is still found and replaced: the
request after a database restart or a killed backend is answered, not a 500."""

from __future__ import annotations

import time

import psycopg2
import pytest
from django.db import close_old_connections, connection

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's persistent connections"
)


def other_connection():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    other = psycopg2.connect(**params)
    other.autocommit = True
    return other


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_healthy_idle_connection_is_checked_without_a_statement(transactional_db):
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")
    other = other_connection()
    try:
        assert connection.is_usable()
        with other.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            # Django's own check would have sent SELECT 1.
            assert cursor.fetchone()[0] == "SELECT 'the last statement'"
    finally:
        other.close()


def test_a_connection_the_server_ended_is_replaced_before_the_next_request(transactional_db, api):
    assert api.fhir("GET", "/fhir/Patient?_count=1").status_code == 200
    pid = backend_pid()
    other = other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while connection.is_usable() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not connection.is_usable()
    finally:
        other.close()

    # What Django runs at the start of every request (request_started), which its test client
    # leaves out.
    close_old_connections()
    response = api.fhir("GET", "/fhir/Patient?_count=1")

    assert response.status_code == 200, response.content
    assert backend_pid() != pid
