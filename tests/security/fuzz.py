"""Coverage-guided fuzzing (atheris/libFuzzer) of the entry points that take untrusted bytes.

    python -m tests.security.fuzz xml -runs=20000
    python -m tests.security.fuzz iwmo -runs=20000
    python -m tests.security.fuzz plan -runs=20000
    python -m tests.security.fuzz mapping -runs=20000

A target may refuse its input only with a :class:`Problem` (what the API turns into problem+json);
any other exception is a crash, and libFuzzer exits non-zero with the input that caused it.
The seeds are the official iWmo examples (when present) and Schakel's own documents.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from gateway.core.mapping import load_mapping
    from gateway.core.problems import Problem
    from gateway.core.xml import XmlLimits, parse_xml
    from schakel_wmo import iwmo, ondersteuningsplan

ROOT = Path(__file__).resolve().parents[2]
# Small limits keep each execution fast; the limits themselves are what the XML tests check.
LIMITS = XmlLimits(max_bytes=64 * 1024, max_depth=32, max_elements=5_000)
MAPPING = load_mapping(ROOT / "mappings" / "vt_melding.yaml")


def xml(data: bytes) -> None:
    try:
        parse_xml(data, LIMITS)
    except Problem:
        pass


def iwmo_message(data: bytes) -> None:
    try:
        root = parse_xml(data, LIMITS)
        bericht = iwmo.identify(root)
        if not iwmo.validate(bericht, root):
            iwmo.header(bericht, root)
            if bericht in iwmo.RETOUR:
                iwmo.retour(bericht, root)
    except Problem:
        pass


def plan(data: bytes) -> None:
    try:
        ondersteuningsplan.parse(data)
    except Problem:
        pass


def mapping(data: bytes) -> None:
    # Any JSON value the mapping may meet as a parsed message: it minimises or reports, never crashes.
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    if isinstance(value, dict):
        confidential = frozenset(k for k in value if isinstance(k, str) and k.startswith("c"))
        MAPPING.apply(value, confidential=confidential, basis="toestemming")


def selfcheck(data: bytes) -> None:
    """Crashes on its own seed: proves that a crash makes this harness fail."""
    if data.startswith(b"CRASH"):
        raise RuntimeError("selfcheck")


TARGETS = {"xml": xml, "iwmo": iwmo_message, "plan": plan, "mapping": mapping, "selfcheck": selfcheck}


def seeds(target: str) -> list[bytes]:
    examples = ROOT.parent / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten"
    found = [p.read_bytes() for p in sorted(examples.glob("*.xml"))] if examples.exists() else []
    if target == "plan":
        found.append(b'<Ondersteuningsplan xmlns="urn:schakel:ondersteuningsplan:1.0" versie="1.0"/>')
    if target == "selfcheck":
        found = [b"CRASH"]
    if target == "mapping":
        found = [json.dumps({"reporter": {"name": "x"}, "children": [{"school": "y"}], "victim": {"bsn": "1"}}).encode()]
    return found


def main() -> None:
    target = sys.argv[1]
    import tempfile

    corpus = Path(tempfile.mkdtemp(prefix=f"schakel-fuzz-{target}-"))
    for n, seed in enumerate(seeds(target)):
        (corpus / f"seed-{n}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
