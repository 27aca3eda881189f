"""Why a connection to the broker failed, in one line a person can act on.

The device's link, the doctor and the operators' client meet the same failures and
name them the same way through this module:

- ``unreachable``: no TCP connection (refused, timed out, DNS) or a connection
  closed before any answer: the network, the address or the broker is at fault.
- ``refused``: a person has to act on credentials or the broker's rules.  The
  broker's certificate is not vouched for by the CA file; the broker's TLS alert
  says no to the client certificate (none presented, an unknown CA, expired,
  revoked); or the broker answered CONNACK with a refusal.

TLS 1.3 checks the client certificate after the client's side of the handshake,
so the broker's alert is read only at the first receive, and an MQTT client that
sent its CONNECT meanwhile often gets a reset instead of the alert (the alert is
lost with the reset).  When the close says no more than that, ``connect_failure``
makes one handshake of its own that sends nothing and reads the broker's alert.
Every message is one line (``one_line``) and names the broker's address.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.errors import ApplianceError, one_line

FailureKind = Literal["refused", "unreachable"]

#: Words in an error that mean TLS itself said no (an alert from the broker, a certificate check).
TLS_MARKERS = ("ssl", "tls", "certificate", "alert")

#: The broker's TLS alert (as OpenSSL words it) → what it says about the client certificate.
ALERTS = (
    ("certificate required", "it requires a client certificate and did not get {cert}"),
    ("unknown ca", "it does not know the CA that issued {cert}"),
    ("certificate expired", "{cert} has expired (or is not valid yet: check this machine's clock)"),
    ("certificate revoked", "{cert} is revoked"),
    ("unsupported certificate", "{cert} is not usable for client authentication"),
    ("bad certificate", "it rejects {cert}"),
    ("certificate unknown", "it rejects {cert}"),
)

#: How long the diagnostic handshake waits for the broker's verdict.
PROBE_TIMEOUT_S = 3.0

_OPENSSL = re.compile(r"\[SSL: [A-Z0-9_]+\] (?P<text>.*?)(?: \(_ssl\.c:\d+\))?$")


@dataclass(frozen=True)
class TlsFiles:
    """What a client trusts (``ca``; None: the system CAs) and presents (``cert``/``key``; None: nothing)."""

    ca: Path | None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the broker (name and chain) and presents the certificate, if any."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ApplianceError(f"TLS files (CA {self.ca or 'system'}, certificate {self.cert}, key {self.key}) "
                                 f"cannot be loaded: {one_line(exc)}") from exc
        return context


@dataclass(frozen=True)
class ConnectFailure:
    kind: FailureKind
    message: str


def connect_failure(address: str, error: BaseException | str | None, tls: TlsFiles | None) -> ConnectFailure:
    """Why connecting to ``address`` failed before any CONNACK.

    ``error`` is the exception the connect raised, or the text paho logged when the
    connection closed before the CONNACK (None: closed without a word); ``tls`` the
    files the client used (None: plain TCP).
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        ca = tls.ca if tls and tls.ca else "the system CAs"
        return ConnectFailure("refused", f"the broker {address} presented a certificate that {ca} does not "
                                         f"vouch for: {error.verify_message}")
    text = one_line(error) if error is not None else ""
    if tls is not None and (isinstance(error, ssl.SSLError) or any(m in text.lower() for m in TLS_MARKERS)):
        refusal = tls_refusal(address, text, tls)
        if refusal is None:   # no alert at all: a middlebox or the network closed it, not the broker's verdict
            return ConnectFailure("unreachable", f"the connection to the broker {address} was closed during the "
                                                 f"TLS handshake without an alert ({text or 'no message'}): the "
                                                 "network between (a proxy, a captive portal), not the certificate")
        return ConnectFailure("refused", refusal)
    if isinstance(error, OSError):
        return ConnectFailure("unreachable", f"cannot reach the broker {address}: {one_line(error.strerror or text)}")
    detail = f" ({text})" if text else ""
    return ConnectFailure("unreachable", f"the broker {address} closed the connection before answering{detail}")


def tls_refusal(address: str, text: str, tls: TlsFiles) -> str | None:
    """The broker ended the TLS session before MQTT began: what its alert says about the client certificate;
    None when no alert says anything (the close came from elsewhere)."""
    detail = _ssl_text(text)
    if _meaning(detail) is None:
        alert = read_alert(address, tls)
        if alert is None and tls.cert is not None:
            return None
        detail = alert or detail
    if tls.cert is None:
        cause = "it requires a client certificate and none was presented"
    else:
        cause = (_meaning(detail) or "it does not accept {cert}").format(cert=f"the client certificate {tls.cert}")
    return f"the broker {address} refused the TLS connection ({detail}): {cause}"


def read_alert(address: str, tls: TlsFiles) -> str | None:
    """The broker's verdict on a fresh handshake that sends nothing: its alert's text, or None (accepted,
    unreachable, silent)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S) as raw, \
                tls.context().wrap_socket(raw, server_hostname=host.strip("[]")) as session:
            session.recv(1)
    except ssl.SSLError as exc:
        text = _ssl_text(one_line(exc))
        return text if "alert" in text.lower() else None   # an EOF or reset is no verdict
    except (OSError, ValueError, ApplianceError):
        return None
    return None


def connack_refusal(address: str, reason: object, advice: str) -> ConnectFailure:
    """The broker answered the CONNECT with a refusal (``reason`` its reason code); ``advice`` says what to check."""
    return ConnectFailure("refused", f"the broker {address} refused the connection: {reason} ({advice})")


def _ssl_text(text: str) -> str:
    """``[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)`` → ``tlsv1 alert unknown ca``."""
    text = text.removeprefix("failed to receive on socket: ")
    match = _OPENSSL.search(text)
    return (match.group("text") if match else re.sub(r" \(_ssl\.c:\d+\)$", "", text)) or "closed"


def _meaning(detail: str) -> str | None:
    return next((meaning for alert, meaning in ALERTS if alert in detail.lower()), None)
