"""One queued twin refresh per patient: a burst of writes about a patient publishes one task.

Before a refresh of a patient is published (``receivers``), a key
``twin-refresh-pending:<queue>:<patient>`` is set in Redis if absent (SET NX, with an expiry).
Already set means a refresh of that patient is queued and has not started: it will read what
the write just committed, so no second task is published (each one costs the write a broker
round trip: bench/crud.py). The task deletes the key when it starts, before it reads the new
Observations (``tasks.refresh_twin``), so whatever commits after that publishes another.

Only with a broker (in process, eagerly, every write refreshes at once, as before) and a Redis
for the keys: ``TWIN_REFRESH_DEBOUNCE_URL``, by default the broker's when it is Redis. A key left
by a task that was never published or lost with a worker lasts
``TWIN_REFRESH_DEBOUNCE_SECONDS``; Redis unreachable, every write publishes its task.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

log = logging.getLogger(__name__)
_clients: dict[str, redis.Redis] = {}


def _client() -> redis.Redis | None:
    url = settings.TWIN_REFRESH_DEBOUNCE_URL
    if not url or settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    client = _clients.get(url)
    if client is None:  # redis-py's pool opens new connections in a forked worker process
        client = _clients[url] = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
    return client


def _key(patient_id: str) -> str:
    return f"twin-refresh-pending:{settings.CELERY_TASK_DEFAULT_QUEUE}:{patient_id}"


def claim(patient_ids: list[str]) -> list[str]:
    """The patients whose refresh is to be published now: those with none queued, marked as
    queued from now on (one round trip for all of them)."""
    client = _client()
    if client is None or not patient_ids:
        return patient_ids
    ttl = settings.TWIN_REFRESH_DEBOUNCE_SECONDS
    try:
        with client.pipeline(transaction=False) as pipe:
            for patient_id in patient_ids:
                pipe.set(_key(patient_id), b"1", nx=True, ex=ttl)
            claimed = pipe.execute()
    except redis.RedisError:
        log.warning("twin refresh debounce: Redis unreachable, queuing every refresh")
        return patient_ids
    return [patient_id for patient_id, won in zip(patient_ids, claimed, strict=True) if won]


def release(patient_id: str) -> None:
    """The patient's queued refresh started (or was never published): the next write queues
    one again."""
    client = _client()
    if client is None:
        return
    try:
        client.delete(_key(patient_id))
    except redis.RedisError:  # the key expires by itself
        log.warning("twin refresh debounce: Redis unreachable, key of Patient/%s left", patient_id)
