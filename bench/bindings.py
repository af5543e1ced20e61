#!/usr/bin/env python
"""The cost of checking required bindings on each write (hl7.org/fhir/R4B/terminologies.html).

    .venv/bin/python bench/bindings.py                  # 20 rounds of 2,000 checks each
    .venv/bin/python bench/bindings.py --rounds 50 --n 5000

Every write checks the codes of required bindings (``fhir_api.bindings.check``) besides the
``fhir.resources`` model validation; the device ingest path validates its Observations the same
way when it validates at all. This measures, in one process and one run, the CPU time per
resource of:

- ``bindings.check`` on the vital-sign Observations ``devices`` makes for a wearable (heart
  rate with interpretation and reference range, blood pressure panel with components, battery)
  and on the heart rate ``bench/crud.py`` posts;
- the model validation of the same resource (``Observation.model_validate``), the baseline the
  check adds to, and ``validation.validate_resource``, the whole check of a write.

Printed: the median over ``--rounds`` of the per-resource time, and the check as a share of the
model validation. The target: well under 0.1 ms per vital-sign Observation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dth_project.settings")
os.environ.setdefault("DEBUG", "1")  # no SECRET_KEY needed: nothing is served or stored


def resources() -> dict[str, dict]:
    import random

    import crud
    from django.utils import timezone

    from devices.readings import Reading, check, observation
    from fhir_api import json_io

    at = timezone.now() - timedelta(hours=1)

    def device(reading: Reading) -> dict:
        obs = observation(check(reading), patient="p1", device_fhir_id="d1", key="k1")
        return json_io.loads(json_io.dumps(obs))

    return {
        "device heart rate": device(Reading("heart_rate", at, value=131, unit="/min")),
        "device blood pressure": device(
            Reading("blood_pressure", at, systolic=182, diastolic=95, unit="mm[Hg]")
        ),
        "device battery": device(Reading("battery", at, value=40)),
        "crud.py heart rate": json_io.loads(crud.observation_body(random.Random(1), "Patient/p1")),
    }


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def per_call_ms(fn, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds; medians shown (20)")
    parser.add_argument("--n", type=int, default=2000, help="calls per round (2000)")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from fhir.resources.R4B.observation import Observation

    from fhir_api import bindings, validation

    print(f"load average: {load()}")
    print(f"{args.rounds} rounds × {args.n} calls; CPU ms per resource, median of the rounds")
    header = (
        f"{'resource':24} {'bindings':>9} {'model':>9} {'write check':>12} {'bindings/model':>15}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, data in resources().items():
        assert bindings.check(data, "Observation") == [], name
        check, model, whole = [], [], []
        for _ in range(args.rounds):
            check.append(per_call_ms(lambda d=data: bindings.check(d, "Observation"), args.n))
            model.append(per_call_ms(lambda d=data: Observation.model_validate(d), args.n))
            whole.append(
                per_call_ms(lambda d=data: validation.validate_resource(d, "Observation"), args.n)
            )
        c, m, w = (statistics.median(x) for x in (check, model, whole))
        worst = max(worst, c)
        print(f"{name:24} {c:9.4f} {m:9.4f} {w:12.4f} {c / m:14.0%}")
    verdict = "met" if worst < 0.1 else "NOT met"
    print(f"target bindings check < 0.1 ms per vital-sign Observation: {verdict} ({worst:.4f} ms)")
    print(f"load average: {load()}")
    return 0 if worst < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
