"""The MQTT consumer: readings from ``<prefix>/<device>/readings`` into the ingest service.

The prefix is ``dth/devices`` unless the setting ``MQTT_TOPIC_PREFIX`` (environment variable
of the same name, or ``mqtt_ingest --topic-prefix``) says otherwise: deployments, test runs or
benches sharing one broker each take their own and never see each other's messages.

QoS 1 with a persistent session (clean_session off, a fixed client id), and each message is
acknowledged only after the transaction holding its readings has committed: a consumer killed
mid-batch leaves its messages unacknowledged, the broker sends them again to the restarted
consumer, and the readings' deterministic identifiers make the second delivery a duplicate
rather than a second Observation. Messages are gathered into batches (up to ``max_batch``
readings or ``max_wait`` seconds) so that one transaction and one bulk write serve many
messages (``services.ingest_many``), acknowledged together after its commit.

A message body is the HTTP body of ``POST /api/devices/readings`` (our JSON or Open mHealth)
plus ``"key": "<device key>"``; the key must belong to the device named in the topic.
Several consumers share the load with ``--shared`` (MQTT shared subscription
``$share/ingest/<prefix>/+/readings``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from fhir_api import bulk, json_io
from fhir_api.exception_handler import as_fhir_error
from fhir_api.exceptions import BadRequest, NotAuthenticated

from . import services
from .adapters import device_named, parse_payload

log = logging.getLogger(__name__)
DEFAULT_PREFIX = "dth/devices"


@dataclass
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes


def broker_address(url: str | None = None) -> tuple[str, int, str | None, str | None]:
    parsed = urlparse(url or settings.MQTT_URL)
    if parsed.scheme not in ("mqtt", "tcp", ""):
        raise ValueError(f"MQTT_URL {url!r}: only mqtt://host:port is supported")
    return parsed.hostname or "127.0.0.1", parsed.port or 1883, parsed.username, parsed.password


def topic_prefix(prefix: str | None = None) -> str:
    """The topic prefix in force (``MQTT_TOPIC_PREFIX``), checked: MQTT topic levels with no
    wildcard, not a ``$`` system topic."""
    value = (prefix if prefix is not None else settings.MQTT_TOPIC_PREFIX).strip("/")
    if not value or "+" in value or "#" in value or value.startswith("$") or "//" in value:
        raise ValueError(
            f"MQTT topic prefix {value!r}: give topic levels such as dth/devices,"
            " with no + or # wildcard, not starting with $"
        )
    return value


def subscription(prefix: str | None = None) -> str:
    """The topic filter of every device's readings under the prefix."""
    return f"{topic_prefix(prefix)}/+/readings"


def device_of(topic: str, prefix: str | None = None) -> str:
    """The device a topic is for: ``<prefix>/<device>/readings``."""
    head = topic_prefix(prefix) + "/"
    device = topic[len(head) : -len("/readings")] if topic.startswith(head) else ""
    if not device or "/" in device or not topic.endswith("/readings"):
        raise BadRequest(f"topic {topic!r} is not {head}<device>/readings")
    return device


def handle(message: Message, prefix: str | None = None) -> services.IngestResult | None:
    """Ingest one message; what cannot be stored becomes a dead letter (never an exception)."""
    parsed = _parse(message, prefix, {})
    if parsed is None:
        return None
    device, items = parsed
    try:
        return services.ingest(device, items, source="mqtt")
    except Exception as exc:
        error = as_fhir_error(exc)
        if error.status >= 500:
            raise
        text = _without_key(message.payload.decode("utf-8", "replace"))
        services.dead_letter(
            "mqtt", device.identifier, f"{error.status}: {error.diagnostics}", text
        )
        return None


def handle_many(messages: list[Message], prefix: str | None = None) -> int:
    """Ingest a batch of messages in one write (``services.ingest_many``); each message that
    cannot be read or authenticated becomes a dead letter. The number of readings stored."""
    keys: dict[str, Any] = {}
    parts = []
    with bulk.gc_paused():  # the parsed payloads are many containers, kept until written
        for message in messages:
            parsed = _parse(message, prefix, keys)
            if parsed is not None:
                parts.append((parsed[0], parsed[1], "mqtt"))
        results = services.ingest_many(parts) if parts else []
    return sum(r.accepted for r in results)


def _parse(message: Message, prefix: str | None, keys: dict[str, Any]):
    """(device, parsed readings) of a message, or None after keeping it as a dead letter.

    ``keys``: the devices of the keys seen in this batch (a device sends many messages)."""
    text = message.payload.decode("utf-8", "replace")
    claimed = ""
    authenticated = False
    try:
        claimed = device_of(message.topic, prefix)
        body = json_io.loads(message.payload)
        key = body.pop("key", None) if isinstance(body, dict) else None
        device = None
        if isinstance(key, str):
            if key not in keys:
                keys[key] = services.authenticate(key)
            device = keys[key]
        if device is None or device.identifier != claimed:
            raise NotAuthenticated(f"no valid key for device '{claimed}' in the message")
        authenticated = True
        named = device_named(body)
        if named is not None and named != claimed:
            raise BadRequest(f"the message names device '{named}' on the topic of '{claimed}'")
        return device, parse_payload(body)
    except Exception as exc:  # every failure is kept, with its reason, to be replayed
        error = as_fhir_error(exc)
        if error.status >= 500:
            raise
        reason = f"{error.status}: {error.diagnostics}"
        if authenticated:
            services.dead_letter("mqtt", claimed, reason, _without_key(text))
        else:  # anyone can publish: kept only within bounds
            services.unauthenticated_letter(
                "mqtt", claimed, reason, _without_key(text).encode("utf-8")
            )
        return None


def _without_key(text: str) -> str:
    """The message as it came, less the device key: a dead letter must not hold a secret."""
    try:
        body = json_io.loads(text)
    except BadRequest:
        return text
    if isinstance(body, dict) and "key" in body:
        body["key"] = "(removed)"
        return json_io.dumps(body)
    return text


class Consumer:
    def __init__(
        self,
        *,
        client_id: str = "clouddth-ingest",
        shared: bool = False,
        max_batch: int = 2000,
        max_wait: float = 0.05,
        url: str | None = None,
        prefix: str | None = None,
    ) -> None:
        self.host, self.port, user, password = broker_address(url)
        self.prefix = topic_prefix(prefix)
        topic = subscription(self.prefix)
        self.topic = f"$share/ingest/{topic}" if shared else topic
        self.max_batch, self.max_wait = max_batch, max_wait
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.processed = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if user:
            self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        client.subscribe(self.topic, qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        self.inbox.put(Message(msg.mid, msg.qos, msg.topic, msg.payload))

    def _batch(self) -> list[Message]:
        try:
            first = self.inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch, readings = [first], max(1, first.payload.count(b'"time"'))
        deadline = time.monotonic() + self.max_wait
        while readings < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=remaining))
            except queue.Empty:
                break
            readings += max(1, batch[-1].payload.count(b'"time"'))
        return batch

    def process(self, batch: list[Message]) -> None:
        """One transaction and one write for the batch, then the acknowledgements.

        Should the batch's write fail, its messages are taken one by one (each in a savepoint),
        so that the error is that one message's; an error no message can be kept for (the
        database gone) stops the consumer with its messages unacknowledged, to be redelivered.
        """
        close_old_connections()
        with transaction.atomic():
            try:
                with transaction.atomic():
                    handle_many(batch, self.prefix)
            except Exception:
                log.warning("a batch of %d message(s) failed: one at a time", len(batch))
                for message in batch:
                    with transaction.atomic():
                        handle(message, self.prefix)
        for message in batch:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
        self.processed += len(batch)

    def run(self, *, until_idle: float | None = None) -> None:
        """Consume until stopped (or, with ``until_idle``, until no message came for that long)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                batch = self._batch()
                if batch:
                    self.process(batch)
                    idle_since = time.monotonic()
                elif until_idle is not None and time.monotonic() - idle_since > until_idle:
                    break
        finally:
            self.client.loop_stop()
            self.client.disconnect()
            connection.close()  # this thread's database connection: nothing left open

    def stop(self) -> None:
        self.stopping.set()


def publish(
    client: mqtt.Client,
    device: str,
    key: str,
    body: dict[str, Any],
    qos: int = 1,
    prefix: str | None = None,
):
    """Publish readings as a device would (used by the simulator and the tests), on the topic
    of the device under the prefix in force."""
    return client.publish(
        f"{topic_prefix(prefix)}/{device}/readings", json_io.dumps({**body, "key": key}), qos=qos
    )
