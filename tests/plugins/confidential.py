"""A plugin whose messages carry a confidential field (a secret shelter address)."""

from gateway.core.hookspecs import hookimpl
from gateway.core.messages import ParsedMessage
from gateway.core.routing import Route


@hookimpl
def register_routes(register):
    for basis_route, mapping in (("shelter.notice", "shelter_notice"), ("shelter.urgent", "shelter_urgent")):
        register(Route(id=basis_route, message_type="shelter_notice", target="webhook", purpose="signalering",
                       legal_bases=("toestemming", "vitaal_belang"), mapping=mapping))


@hookimpl
def parse_inbound(message):
    if message.route.message_type != "shelter_notice":
        return None
    import json

    data = json.loads(message.body)
    return ParsedMessage(data=data, subject=data["client_id"], partner_id=data.get("partner"),
                         confidential=frozenset({"client.address"}), basis_evidence=data.get("evidence", {}))
