"""``manage.py mqtt_ingest``: the long-running MQTT consumer (see ``devices.mqtt``)."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand, CommandError

from devices.mqtt import Consumer


class Command(BaseCommand):
    help = (
        "Consume device readings from MQTT (<prefix>/+/readings, prefix MQTT_TOPIC_PREFIX,"
        " dth/devices by default; QoS 1, ack after commit)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--client-id", default="clouddth-ingest")
        parser.add_argument("--shared", action="store_true", help="join the $share/ingest group")
        parser.add_argument(
            "--topic-prefix",
            default=None,
            help="topic prefix (default: the MQTT_TOPIC_PREFIX setting, dth/devices)",
        )
        parser.add_argument("--max-batch", type=int, default=2000, help="readings per transaction")
        parser.add_argument(
            "--max-wait", type=float, default=0.05, help="seconds to gather a batch"
        )
        parser.add_argument(
            "--until-idle", type=float, default=None, help="exit after N idle seconds"
        )

    def handle(
        self, *args, client_id, shared, topic_prefix, max_batch, max_wait, until_idle, **options
    ) -> None:
        try:
            consumer = Consumer(
                client_id=client_id,
                shared=shared,
                max_batch=max_batch,
                max_wait=max_wait,
                prefix=topic_prefix,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        signal.signal(signal.SIGINT, lambda *_: consumer.stop())
        self.stderr.write(f"mqtt_ingest: {consumer.host}:{consumer.port} topic {consumer.topic}")
        consumer.run(until_idle=until_idle)
        self.stderr.write(f"mqtt_ingest: stopped after {consumer.processed} message(s)")
