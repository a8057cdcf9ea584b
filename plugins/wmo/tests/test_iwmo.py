"""iWmo 3.2 against the official XSDs and example messages in ../shared/reference/iwmo-3.2."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.core.problems import Problem
from schakel_wmo import iwmo

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten"
pytestmark = pytest.mark.skipif(not EXAMPLES.exists(), reason=f"the official iWmo examples are not at {EXAMPLES}")


def example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.xml").read_bytes()


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.xml")) if EXAMPLES.exists() else [])
def test_every_official_example_is_identified_and_valid(name):
    bericht, root = iwmo.parse(example(name))
    assert bericht == name
    assert iwmo.validate(bericht, root) == []
    assert iwmo.header(bericht, root).code == iwmo.CODES[name]


def test_the_schemas_are_compiled_once():
    assert iwmo.schema("WMO301") is iwmo.schema("WMO301")


def test_the_retour_on_the_official_301_is_a_valid_302_with_0200_everywhere():
    bericht, root = iwmo.parse(example("WMO301"))
    retour = etree.fromstring(iwmo.retour(bericht, root))
    ns = {"r": iwmo.namespace("WMO302"), "b": iwmo.BASIS}
    assert iwmo.validate("WMO302", retour) == []
    assert retour.findtext("r:Header/r:BerichtCode", namespaces=ns) == "415"
    assert len(retour.findtext("r:Header/r:IdentificatieRetour", namespaces=ns)) <= 12
    assert retour.findtext("r:Header/r:BerichtIdentificatie/b:Identificatie", namespaces=ns) == "123456789012"
    codes = [c.text for c in retour.iterfind(".//r:RetourCode", namespaces=ns)]
    classes = sum(1 for _ in retour.iter(*(f"{{{ns['r']}}}{c}" for c in iwmo.RETOUR_CLASSES["WMO302"])))
    assert codes == ["0200"] * (classes + 1)


def test_a_code_given_for_one_allocation_lands_on_that_allocation():
    bericht, root = iwmo.parse(example("WMO301"))
    product = root.find(".//{%s}ToegewezenProduct" % iwmo.namespace("WMO301"))
    retour = etree.fromstring(iwmo.retour(bericht, root, codes={iwmo.path_of(product): ["9332"]}))
    ns = {"r": iwmo.namespace("WMO302")}
    assert retour.findtext(".//r:ToegewezenProduct/r:RetourCodes/r:RetourCode", namespaces=ns) == "9332"
    assert iwmo.validate("WMO302", retour) == []


def test_a_message_of_an_earlier_release_is_refused_by_namespace():
    old = example("WMO301").replace(b"iwmo/3_2/wmo301", b"iwmo/2_4/wmo301")
    with pytest.raises(Problem) as refused:
        iwmo.parse(old)
    assert refused.value.slug == "message-invalid" and "iWmo 3.2" in refused.value.detail


def test_schema_errors_name_a_line_and_a_kind_never_the_value():
    broken = example("WMO301").replace(b"<wmo301:Bsn>999900006</wmo301:Bsn>", b"<wmo301:Bsn>GEHEIM-NAAM</wmo301:Bsn>")
    bericht, root = iwmo.parse(broken)
    errors = iwmo.validate(bericht, root)
    assert errors and "GEHEIM" not in str(errors)


def test_a_message_of_the_standard_without_a_shipped_schema_is_refused_not_crashed_on():
    """Found by the fuzzer at 100,000 runs: a WMO316 with a WMO306 namespace was identified (306 is
    an iWmo 3.2 message) and then validated against an XSD the plugin does not ship."""
    body = example("WMO316").replace(b"/wmo316/schema", b"/wmo306/schema")
    bericht, root = iwmo.parse(body)
    assert bericht == "WMO306" and not iwmo.has_schema(bericht)
    with pytest.raises(Problem) as refused:
        iwmo.validate(bericht, root)
    assert refused.value.slug == "message-invalid"
