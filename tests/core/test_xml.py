"""The core XML parser refuses the classic attacks quickly, without echoing content, and still
parses the official iWmo 3.2 examples."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest

from gateway.core.problems import Problem
from gateway.core.xml import XmlLimits, parse_xml

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "iwmo-3.2" / "voorbeeldberichten"
SECRET = b"GEHEIM-ADRES-Lindelaan-7"

ATTACKS: dict[str, bytes] = {
    "external entity to a local file": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%d;" % (i - 1) if i > 1 else b"&lol;" for _ in range(10)))
                   for i in range(1, 10))
        + b"]><lolz>&lol9;</lolz>"
    ),
    "quadratic blow-up": b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + b"A" * 50_000 + b'">]><q>' + b"&a;" * 2_000 + b"</q>",
    "external DTD": b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
    "parameter entities": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><r/>',
    "XInclude": b'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></r>',
    "very deep nesting": b"<a>" * 100_000 + b"</a>" * 100_000,
    "200,000 attributes": b"<a " + b" ".join(b'a%d="1"' % i for i in range(200_000)) + b"/>",
    "gzip bomb": gzip.compress(b"<a>" + b" " * 50_000_000 + b"</a>"),
    "secret content in a malformed document": b"<client><naam>" + SECRET + b"</naam></clent>",
}


@pytest.mark.parametrize("name", ATTACKS)
def test_each_classic_attack_is_refused_quickly_with_a_clear_problem(name):
    started = time.monotonic()
    with pytest.raises(Problem) as refused:
        parse_xml(ATTACKS[name])
    assert time.monotonic() - started < 2.0
    problem = refused.value
    assert problem.slug in {"xml-malformed", "xml-forbidden-construct", "xml-limits-exceeded", "payload-too-large"}
    text = str(problem.body())
    assert b"passwd".decode() not in text and SECRET.decode() not in text and "lol" not in text


def test_no_file_is_read_and_no_entity_is_expanded():
    with pytest.raises(Problem) as refused:
        parse_xml(ATTACKS["external entity to a local file"])
    assert refused.value.slug == "xml-forbidden-construct"
    assert "root:" not in str(refused.value.body())


def test_limits_can_be_tightened():
    with pytest.raises(Problem) as refused:
        parse_xml(b"<a><b><c/></b></a>", XmlLimits(max_depth=2))
    assert refused.value.slug == "xml-limits-exceeded"
    with pytest.raises(Problem):
        parse_xml(b"<a>" + b"<b/>" * 20 + b"</a>", XmlLimits(max_elements=10))
    with pytest.raises(Problem) as too_big:
        parse_xml(b"<a/>" + b" " * 100, XmlLimits(max_bytes=50))
    assert too_big.value.slug == "payload-too-large"


def _nested(depth: int) -> bytes:
    return b"<e>" * depth + b"</e>" * depth


def _attributes(count: int) -> bytes:
    return b"<a><b " + b" ".join(b'x%d="1"' % i for i in range(count)) + b"/></a>"


@pytest.mark.parametrize(("document", "limits"), [
    (_nested(64), XmlLimits()),
    (b"<a>" + b"<b/>" * 9 + b"</a>", XmlLimits(max_elements=10)),
    (_attributes(100), XmlLimits()),
    (_nested(3), XmlLimits(max_depth=3)),
    (_attributes(3), XmlLimits(max_attributes=3)),
], ids=["64 deep", "10 elements", "100 attributes", "3 deep of 3", "3 attributes of 3"])
def test_a_document_exactly_at_each_limit_is_accepted(document, limits):
    assert parse_xml(document, limits) is not None


@pytest.mark.parametrize(("document", "limits"), [
    (_nested(65), XmlLimits()),
    (b"<a>" + b"<b/>" * 10 + b"</a>", XmlLimits(max_elements=10)),
    (_attributes(101), XmlLimits()),
    (b"<r><z/>" + b"<a>" * 2 + _nested(2) + b"</a>" * 2 + b"</r>", XmlLimits(max_depth=4)),
    (b'<a y="1"><b/><c><d/><e ' + b" ".join(b'x%d="1"' % i for i in range(4)) + b'/></c></a>', XmlLimits(max_attributes=3)),
    (b'<a x="1" y="2" z="3" w="4"><b/></a>', XmlLimits(max_attributes=3)),
    (b"<a/>", XmlLimits(max_depth=0)),
], ids=["65 deep", "11 elements", "101 attributes", "too deep in a later branch", "too many on a later leaf",
        "too many on the root", "no depth at all"])
def test_one_past_any_limit_is_refused_anywhere_in_the_document(document, limits):
    with pytest.raises(Problem) as refused:
        parse_xml(document, limits)
    assert refused.value.slug == "xml-limits-exceeded"


@pytest.mark.parametrize("namespace", ["http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"])
def test_xinclude_is_refused_even_deep_inside_and_under_any_prefix(namespace):
    for document in (f'<r><a><b><x:fallback xmlns:x="{namespace}"/></b></a></r>'.encode(),
                     f'<r><a><include xmlns="{namespace}" href="file:///etc/passwd"/></a></r>'.encode()):
        with pytest.raises(Problem) as refused:
            parse_xml(document)
        assert refused.value.slug == "xml-forbidden-construct"


def test_only_bytes_are_parsed_never_a_path():
    with pytest.raises(TypeError):
        parse_xml("/etc/passwd")  # type: ignore[arg-type]


def test_a_byte_order_mark_and_an_encoding_declaration_are_fine():
    assert parse_xml(b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><a>x</a>").text == "x"
    assert parse_xml("<?xml version='1.0' encoding='UTF-16'?><a>ü</a>".encode("utf-16")).text == "ü"


def test_a_wrong_encoding_declaration_is_malformed():
    with pytest.raises(Problem) as refused:
        parse_xml("<?xml version='1.0' encoding='UTF-8'?><a>\u00fc</a>".encode("latin-1"))
    assert refused.value.slug == "xml-malformed"


@pytest.mark.skipif(not REFERENCE.exists(), reason=f"the iWmo reference examples are not at {REFERENCE}")
@pytest.mark.parametrize("example", sorted(p.name for p in REFERENCE.glob("*.xml")) if REFERENCE.exists() else [])
def test_the_official_iwmo_examples_still_parse(example):
    root = parse_xml((REFERENCE / example).read_bytes())
    assert root.tag.endswith("}Bericht")


def test_nesting_past_libxml2s_own_limit_is_named_a_limit_not_malformed_xml():
    with pytest.raises(Problem) as refused:
        parse_xml(ATTACKS["very deep nesting"])
    assert refused.value.slug == "xml-limits-exceeded"
