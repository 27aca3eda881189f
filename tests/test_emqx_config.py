"""provisioning/emqx grants exactly what provisioning/mosquitto grants, checked without an EMQX (none here).

Both ACLs are read and evaluated for a matrix of identities (listener, CN, client id), actions and
topics; any (identity, action, topic) that one allows and the other refuses is a failure.  Semantics
modelled, per broker:
- mosquitto 2.0 (per_listener_settings): the listener's file only; ``pattern`` lines for everyone with
  ``%u``/``%c`` replaced, ``topic`` lines for the ``user`` above them; read governs subscriptions,
  write publishes; any matching grant allows.
- EMQX 5 file authorization: one rule list for all listeners, first match wins, no match denies;
  ``${username}``/``${clientid}`` rendered; a ``$share/GROUP/`` prefix is dropped before the check.
Both match an ACL filter against the topic (or a subscription's filter) level by level, which is
paho's ``topic_matches_sub``.  The emqx.conf checks are textual: the zones that tag each listener's
clients, the things acl.conf relies on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from paho.mqtt.client import topic_matches_sub

ROOT = Path(__file__).resolve().parent.parent
EMQX = ROOT / "provisioning" / "emqx"
MOSQUITTO = ROOT / "provisioning" / "mosquitto"
ACL_FILES = {"devices": "devices.acl", "operators": "operators.acl"}

TOKEN = re.compile(r'\s+|%[^\n]*|"(?P<str>(?:[^"\\]|\\.)*)"|\'(?P<qatom>[^\']*)\'|(?P<atom>[a-z][A-Za-z0-9_]*)'
                   r'|(?P<punct>[{}\[\],.])')


class Str(str):
    """An Erlang string, as opposed to an atom (a plain str)."""


def read_erlang_terms(text: str) -> list[object]:
    """The dot-terminated terms of ``text``: tuples, lists, atoms and strings only (what acl.conf uses)."""
    tokens: list[tuple[str, object]] = []
    at = 0
    while at < len(text):
        match = TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"acl.conf line {text.count(chr(10), 0, at) + 1}: unexpected {text[at:at + 20]!r}")
        at = match.end()
        if match["str"] is not None:
            tokens.append(("term", Str(match["str"])))
        elif match["qatom"] is not None or match["atom"] is not None:
            tokens.append(("term", match["qatom"] if match["qatom"] is not None else match["atom"]))
        elif match["punct"]:
            tokens.append(("punct", match["punct"]))

    def term(i: int) -> tuple[object, int]:
        kind, value = tokens[i]
        if kind == "term":
            return value, i + 1
        close = {"{": "}", "[": "]"}.get(str(value))
        if close is None:
            raise ValueError(f"acl.conf: unexpected {value!r}")
        items, i = [], i + 1
        while tokens[i] != ("punct", close):
            item, i = term(i)
            items.append(item)
            if tokens[i] == ("punct", ","):
                i += 1
        return (tuple(items) if close == "}" else items), i + 1

    terms, i = [], 0
    while i < len(tokens):
        value, i = term(i)
        if tokens[i] != ("punct", "."):
            raise ValueError(f"acl.conf: {value!r} is not followed by '.'")
        terms.append(value)
        i += 1
    return terms


def real_filter(action: str, topic: str) -> str:
    return topic.split("/", 2)[2] if action == "subscribe" and topic.startswith("$share/") else topic


def emqx_allows(rules: list[object], client: dict[str, str], action: str, topic: str) -> bool:
    def who(spec: object) -> bool:
        if spec == "all":
            return True
        if spec[0] == "and":
            return all(who(part) for part in spec[1])
        if spec[0] == "client_attr":
            return client.get(f"attr.{spec[1]}") == spec[2]
        if spec[0] in ("username", "clientid"):
            value = client[spec[0]]
            return bool(re.search(spec[1][1], value)) if isinstance(spec[1], tuple) else value == spec[1]
        raise ValueError(f"acl.conf: who {spec!r} is not modelled here")

    def render(pattern: str) -> str:
        rendered = pattern.replace("${username}", client["username"]).replace("${clientid}", client["clientid"])
        if "${" in rendered:
            raise ValueError(f"acl.conf: placeholder in {pattern!r} is not modelled here")
        return rendered

    real = real_filter(action, topic)
    for rule in rules:
        if len(rule) == 2 and rule[1] == "all":
            return rule[0] == "allow"
        permission, spec, rule_action, filters = rule
        if rule_action in (action, "all") and who(spec) and any(topic_matches_sub(render(f), real) for f in filters):
            return permission == "allow"
    return False


def mosquitto_allows(listener: str, client: dict[str, str], action: str, topic: str) -> bool:
    need, real, user = ("read" if action == "subscribe" else "write"), real_filter(action, topic), None
    path = MOSQUITTO / ACL_FILES[listener]
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) == 2:
            user = words[1]
            continue
        if len(words) != 3 or words[0] not in ("pattern", "topic") or words[1] not in ("read", "write", "readwrite"):
            raise ValueError(f"{path.name} line {number}: {line!r} is not modelled here")
        kind, access, acl_topic = words
        if kind == "pattern":
            acl_topic = acl_topic.replace("%u", client["username"]).replace("%c", client["clientid"])
        elif user != client["username"]:
            continue
        if need in access.replace("readwrite", "read write").split() and topic_matches_sub(acl_topic, real):
            return True
    return False


DEVICE = "shop-1-screen-2"
# Services' names on the devices' listener and a device's on the operators' one: never issued (the CAs
# refuse them), but the rules must still keep each listener's grants to its own clients.
CLIENTS = [("devices", cn, cn) for cn in (DEVICE, "mall-01-screen-3", "operator", "ingest-1")] + [
    ("operators", cn, client_id) for cn, client_id in (
        ("operator", "operator-push-1"), ("operator-alice", "operator-alice"), ("ingest", "oivis-ingest"),
        ("ingest-1", "ingest-1"), ("ingest-4", "ingest-4"), ("ingest-5", "ingest-5"), ("console", "console"),
        (DEVICE, DEVICE))]
SUFFIXES = ["status", "health", "events", "state/reported", "cmd-res", "state/desired", "cmd/reboot", "cmd/reboot/x", "cmd/+",
            "events/stored", "events/stored/x", "#"]
TOPICS = [f"oivis/v1/{device}/{suffix}" for device in (DEVICE, "mall-01-screen-3", "other-dev", "+")
          for suffix in SUFFIXES] + ["oivis/#", "oivis/v1/#", "#", "$SYS/broker/uptime", f"oivis/v2/{DEVICE}/events"]
CASES = [(client, "publish", topic) for client in CLIENTS for topic in TOPICS if "+" not in topic and "#" not in topic]
CASES += [(client, "subscribe", prefix + topic) for client in CLIENTS for topic in TOPICS
          for prefix in ("", "$share/ingest/")]


def differences(rules: list[object]) -> list[tuple[str, str, str, str, bool]]:
    """Each (listener, CN, action, topic, what mosquitto says) on which the EMQX rules say otherwise."""
    found = []
    for (listener, cn, client_id), action, topic in CASES:
        client = {"username": cn, "clientid": client_id, "attr.listener": listener}
        expected = mosquitto_allows(listener, client, action, topic)
        if emqx_allows(rules, client, action, topic) != expected:
            found.append((listener, cn, action, topic, expected))
    return found


def shipped_rules() -> list[object]:
    return read_erlang_terms((EMQX / "acl.conf").read_text())


def test_acl_conf_grants_what_the_mosquitto_acls_grant() -> None:
    assert differences(shipped_rules()) == []


@pytest.mark.parametrize(("client", "action", "topic", "allowed"), [
    (("devices", DEVICE, DEVICE), "publish", f"oivis/v1/{DEVICE}/events", True),
    (("devices", DEVICE, DEVICE), "publish", "oivis/v1/other-dev/events", False),
    (("devices", DEVICE, DEVICE), "subscribe", f"oivis/v1/{DEVICE}/cmd/+", True),
    (("devices", DEVICE, DEVICE), "subscribe", "oivis/v1/+/events", False),
    (("operators", "ingest-1", "ingest-1"), "subscribe", "$share/ingest/oivis/v1/+/events", True),
    (("operators", "ingest-1", "ingest-1"), "publish", f"oivis/v1/{DEVICE}/events/stored", True),
    (("operators", "ingest-1", "ingest-1"), "publish", f"oivis/v1/{DEVICE}/state/desired", False),
    (("operators", "operator", "operator-push-1"), "publish", f"oivis/v1/{DEVICE}/cmd/reboot", True),
    (("operators", "operator", "operator-push-1"), "subscribe", "oivis/#", True),
    (("operators", DEVICE, DEVICE), "publish", f"oivis/v1/{DEVICE}/events", False),
])
def test_the_contracts_grants_hold_on_both_brokers(client: tuple[str, str, str], action: str, topic: str,
                                                   allowed: bool) -> None:
    listener, cn, client_id = client
    who = {"username": cn, "clientid": client_id, "attr.listener": listener}
    assert (mosquitto_allows(listener, who, action, topic), emqx_allows(shipped_rules(), who, action, topic)) \
        == (allowed, allowed)


def test_a_rule_widened_in_one_file_only_is_found() -> None:
    text = (EMQX / "acl.conf").read_text()
    widened = text.replace('"oivis/v1/${username}/events",', '"oivis/v1/+/events",', 1)
    assert widened != text
    assert ("devices", DEVICE, "publish", "oivis/v1/other-dev/events", False) in differences(read_erlang_terms(widened))


def test_each_listener_tags_its_clients_as_acl_conf_expects() -> None:
    conf = (EMQX / "emqx.conf").read_text()
    zones = {name: body for name, body in re.findall(r"^zones\.(\w+)\.mqtt \{(.*?)^\}", conf, re.M | re.S)}
    listeners = {}
    for body in re.findall(r"^listeners\.ssl\.\w+ \{(.*?)^\}", conf, re.M | re.S):
        port = re.search(r'bind = "0\.0\.0\.0:(\d+)"', body)[1]
        assert "verify = verify_peer" in body and "fail_if_no_peer_cert = true" in body, port
        zone = zones[re.search(r"zone = (\w+)", body)[1]]
        assert "peer_cert_as_username = cn" in zone, port
        listeners[port] = (re.search(r'concat\(\[\'(\w+)\'\]\)", set_as_attr = "listener"', zone)[1],
                           "peer_cert_as_clientid = cn" in zone)
    assert listeners == {"8883": ("devices", True), "8884": ("operators", False)}
    assert re.search(r"no_match = deny", conf) and 'path = "${EMQX_ETC_DIR}/acl.conf"' in conf
    assert "max_packet_size = 16MB" in conf
