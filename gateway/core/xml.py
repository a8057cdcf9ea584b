"""The one XML parser every plugin uses.

Hardened against the classic attacks: documents are parsed from bytes only (lxml given a file
path silently gunzips it), any DOCTYPE — and with it every entity declaration — is refused,
entities are never resolved, nothing is fetched from the network, XInclude is refused rather
than ignored, and size, depth, width and attribute counts are bounded. Error messages name a
position, never the document's content, because that content may be personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from gateway.core.problems import Problem

XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


@dataclass(frozen=True)
class XmlLimits:
    max_bytes: int = 5 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 200_000
    max_attributes: int = 100


def _parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(data: bytes, limits: XmlLimits = XmlLimits()) -> etree._Element:
    """Parse ``data`` safely and return the root element, or raise a :class:`Problem`."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError("parse_xml takes bytes; never a path or a file object")
    if len(data) > limits.max_bytes:
        raise Problem("payload-too-large", f"XML documents are limited to {limits.max_bytes} bytes.")
    if data.startswith(_COMPRESSED_MAGIC):
        raise Problem("xml-forbidden-construct", "Compressed documents are not accepted; send plain XML.")
    try:
        root = etree.fromstring(bytes(data), _parser())
    except etree.XMLSyntaxError as exc:
        if exc.code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
            # libxml2's own limits (nesting past 256, a text node past 10 MB) come before ours.
            raise Problem("xml-limits-exceeded", "The document is nested too deeply or holds too large a part.") from None
        line, column = exc.position if exc.position else (None, None)
        raise Problem("xml-malformed", f"Not well-formed XML near line {line}, column {column}.") from None
    except ValueError:
        raise Problem("xml-malformed", "The document could not be decoded as XML.") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise Problem("xml-forbidden-construct", "Document type declarations (DOCTYPE, ENTITY) are not accepted.")
    _check_structure(root, limits)
    return root


def _check_structure(root: etree._Element, limits: XmlLimits) -> None:
    # Each question is answered inside libxml2 (an XPath or a filtered iteration): walking the
    # tree in Python cost about a microsecond per element, most of the parse of an iWmo message.
    if _deeper_than(limits.max_depth)(root):
        raise Problem("xml-limits-exceeded", f"Elements may nest at most {limits.max_depth} deep.")
    if _COUNT_ELEMENTS(root) > limits.max_elements:
        raise Problem("xml-limits-exceeded", f"A document may hold at most {limits.max_elements} elements.")
    if _more_attributes_than(limits.max_attributes)(root):
        raise Problem("xml-limits-exceeded", f"An element may carry at most {limits.max_attributes} attributes.")
    if next(root.iter(*_XINCLUDE), None) is not None:
        raise Problem("xml-forbidden-construct", "XInclude is not accepted.")
    if next(root.iter(etree.Entity), None) is not None:
        raise Problem("xml-forbidden-construct", "Entity references are not accepted.")


_COUNT_ELEMENTS = etree.XPath("count(descendant-or-self::*)")
_XINCLUDE = tuple(f"{{{namespace}}}*" for namespace in XINCLUDE_NAMESPACES)


@lru_cache(maxsize=8)
def _deeper_than(depth: int) -> etree.XPath:
    # The root is at depth 1, so an element below ``depth`` is ``depth`` child steps from it.
    return etree.XPath("boolean(" + ("/".join(["*"] * depth) or ".") + ")")  # below depth 0: the root itself


@lru_cache(maxsize=8)
def _more_attributes_than(count: int) -> etree.XPath:
    # An element with a (count + 1)th attribute; the position test stops where counting would not.
    return etree.XPath(f"boolean(descendant-or-self::*/@*[{int(count) + 1}])")


def load_schema(data: bytes, resolver: etree.Resolver | None = None, base_url: str | None = None) -> etree.XMLSchema:
    """Compile an XSD that ships with a plugin (trusted input, still parsed without network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    if resolver is not None:
        parser.resolvers.add(resolver)
    document = etree.fromstring(data, parser, base_url=base_url)
    return etree.XMLSchema(document)
