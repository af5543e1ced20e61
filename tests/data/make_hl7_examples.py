"""Select official HL7 FHIR R4 example resources as round-trip test data.

Source: the npm package ``hl7.fhir.r4.examples`` (HL7 Inc., "FHIR R4 package:
Examples", licence CC0-1.0, https://hl7.org/fhir/R4). CC0 lets us copy and
redistribute the examples without conditions; we still record where they came
from in the generated ``README.md``.

Usage (the package is NOT kept in the repository)::

    cd "$(mktemp -d)" && npm pack hl7.fhir.r4.examples && tar xzf hl7.fhir.r4.examples-*.tgz
    python tests/data/make_hl7_examples.py "$PWD/package"

What it does:

1. Reads every ``*.json`` file of the unpacked package folder (sorted by name).
2. Keeps only single resources that
   - are not ``Bundle``s and whose ``resourceType`` the ``fhir.resources.R4B``
     models know,
   - have an ``id`` (used for the output name ``<ResourceType>-<id>.json``),
   - are smaller than 60 KB, and
   - validate with ``get_fhir_model_class(rt).model_validate(data)``, where
     ``data`` is parsed with ``simplejson.loads(text, use_decimal=True)`` so
     decimals keep their exact precision. R4 examples that are not valid R4B
     are skipped.
3. Picks about ``--count`` (default 300) of them round-robin over the resource
   types (types sorted by name), so as many types as possible are represented.
   Within a type, examples containing decimals whose text is precision-sensitive
   (trailing zeros such as ``72.50`` or exponents such as ``1E-22``) come first,
   then the rest by file name. The selection is deterministic.
4. Copies the ORIGINAL file bytes unchanged (no re-indentation, no re-encoding)
   into the output folder (default: ``hl7-examples`` next to this script), after
   removing the ``*.json`` files of a previous run, and writes ``README.md``.

The resource types Patient, Observation, Practitioner, Organization, Condition,
Encounter, Device and MedicationRequest must end up in the selection; the script
fails otherwise.
"""

from __future__ import annotations

import argparse
import decimal
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simplejson
from fhir.resources.R4B import get_fhir_model_class

PACKAGE_NAME = "hl7.fhir.r4.examples"
MAX_FILE_BYTES = 60 * 1024
DEFAULT_COUNT = 300
DEFAULT_MAX_TOTAL_BYTES = 4_000_000
REQUIRED_TYPES = (
    "Patient",
    "Observation",
    "Practitioner",
    "Organization",
    "Condition",
    "Encounter",
    "Device",
    "MedicationRequest",
)
# Files of the package that are not example resources.
NON_EXAMPLE_FILES = frozenset({"package.json", "ig-r4.json", ".index.json"})
SAFE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TRAILING_ZERO = re.compile(r"^-?\d+\.\d*0$")


@dataclass(frozen=True)
class Candidate:
    """A valid example resource that may be copied."""

    source: Path
    resource_type: str
    resource_id: str
    size: int
    precision_sensitive: bool

    @property
    def target_name(self) -> str:
        return f"{self.resource_type}-{self.resource_id}.json"


def iter_decimals(value: Any) -> list[decimal.Decimal]:
    """Return every JSON number parsed as a Decimal inside ``value``."""
    found: list[decimal.Decimal] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, decimal.Decimal):
            found.append(item)
    return found


def is_precision_sensitive(number: decimal.Decimal) -> bool:
    """True for decimals whose text would change if passed through a float."""
    text = str(number)
    return bool(TRAILING_ZERO.match(text)) or "E" in text.upper()


def load_candidate(path: Path) -> tuple[Candidate | None, str]:
    """Check one package file; return the candidate or None plus a skip reason."""
    raw = path.read_bytes()
    if len(raw) >= MAX_FILE_BYTES:
        return None, "too large"
    if raw.startswith(b"\xef\xbb\xbf"):
        return None, "UTF-8 BOM"
    try:
        data = simplejson.loads(raw.decode("utf-8"), use_decimal=True)
    except (UnicodeDecodeError, simplejson.JSONDecodeError):
        return None, "not JSON"
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return None, "not a resource"
    resource_type: str = data["resourceType"]
    if resource_type == "Bundle":
        return None, "Bundle"
    resource_id = data.get("id")
    if not isinstance(resource_id, str) or not SAFE_ID.match(resource_id):
        return None, "no usable id"
    try:
        model_class = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, LookupError):
        return None, "type unknown to R4B"
    try:
        model_class.model_validate(data)
    except Exception:  # pydantic ValidationError and FHIR-specific errors
        return None, "invalid as R4B"
    sensitive = any(is_precision_sensitive(d) for d in iter_decimals(data))
    return Candidate(path, resource_type, resource_id, len(raw), sensitive), ""


def select(candidates: list[Candidate], count: int, max_total_bytes: int) -> list[Candidate]:
    """Round-robin over sorted resource types until ``count`` are chosen."""
    by_type: dict[str, list[Candidate]] = defaultdict(list)
    for cand in candidates:
        by_type[cand.resource_type].append(cand)
    for items in by_type.values():
        items.sort(key=lambda c: (not c.precision_sensitive, c.source.name))
    queues = {rt: list(items) for rt, items in sorted(by_type.items())}

    chosen: list[Candidate] = []
    total = 0
    while len(chosen) < count and any(queues.values()):
        for items in queues.values():
            if len(chosen) >= count:
                break
            while items:
                cand = items.pop(0)
                if total + cand.size <= max_total_bytes:
                    chosen.append(cand)
                    total += cand.size
                    break
    return chosen


def write_readme(out_dir: Path, version: str, chosen: list[Candidate]) -> None:
    types = sorted({c.resource_type for c in chosen})
    total = sum(c.size for c in chosen)
    sensitive = sorted(c.target_name for c in chosen if c.precision_sensitive)
    lines = [
        "# Official HL7 FHIR R4 examples (round-trip test data)",
        "",
        f"These {len(chosen)} files are example resources of {len(types)} resource types",
        f"taken unchanged (original bytes) from the npm package `{PACKAGE_NAME}`",
        f'version {version} (HL7 Inc., "FHIR R4 package: Examples",',
        "https://hl7.org/fhir/R4). The package and these examples are licensed",
        "**CC0-1.0** (public domain dedication).",
        "",
        "Each file is one resource named `<ResourceType>-<id>.json`. Only single",
        "resources (no Bundles) with an `id`, under 60 KB, that validate with the",
        "`fhir.resources.R4B` models (numbers parsed as exact decimals) were kept;",
        "they were picked round-robin over the resource types. Total size:",
        f"{total} bytes.",
        "",
        f"{len(sensitive)} files contain decimals whose exact text matters (trailing zeros",
        "like `105.00`, or exponents like `1E-22`):",
        "",
        *[f"- `{name}`" for name in sensitive],
        "",
        "## Regenerate",
        "",
        "```sh",
        'cd "$(mktemp -d)" && npm pack hl7.fhir.r4.examples \\',
        '    && tar xzf hl7.fhir.r4.examples-*.tgz && PKG="$PWD/package" && cd -',
        '.venv/bin/python tests/data/make_hl7_examples.py "$PKG"',
        "```",
        "",
        "Do not keep the unpacked package inside the repository.",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path, help="unpacked npm 'package' folder")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "hl7-examples"
    )
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--max-total-bytes", type=int, default=DEFAULT_MAX_TOTAL_BYTES)
    args = parser.parse_args(argv)

    package_dir: Path = args.package_dir
    manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    if manifest.get("name") != PACKAGE_NAME:
        parser.error(f"{package_dir} is not the {PACKAGE_NAME} package")
    version = str(manifest.get("version"))

    candidates: list[Candidate] = []
    seen: set[str] = set()
    skipped: dict[str, int] = defaultdict(int)
    for path in sorted(package_dir.glob("*.json")):
        if path.name in NON_EXAMPLE_FILES:
            continue
        cand, reason = load_candidate(path)
        if cand is None:
            skipped[reason] += 1
        elif cand.target_name in seen:
            skipped["duplicate type/id"] += 1
        else:
            seen.add(cand.target_name)
            candidates.append(cand)

    chosen = select(candidates, args.count, args.max_total_bytes)
    missing = set(REQUIRED_TYPES) - {c.resource_type for c in chosen}
    if missing:
        print(f"required resource types missing: {sorted(missing)}", file=sys.stderr)
        return 1

    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.json"):
        old.unlink()
    for cand in chosen:
        (out_dir / cand.target_name).write_bytes(cand.source.read_bytes())
    write_readme(out_dir, version, chosen)

    n_types = len({c.resource_type for c in chosen})
    print(
        f"{PACKAGE_NAME} {version}: {len(candidates)} valid candidates, "
        f"wrote {len(chosen)} examples of {n_types} types "
        f"({sum(c.size for c in chosen)} bytes) to {out_dir}"
    )
    for reason, n in sorted(skipped.items()):
        print(f"  skipped {n:5d}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
