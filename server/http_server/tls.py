"""The node's TLS: TLS 1.2 and 1.3 only with forward-secret AEAD ciphers, client certificates verified
against a CA bundle when the config names one, and certificate files reloaded when they change (rotation
without a restart)."""

import asyncio
import contextlib
import logging
import os
import ssl
import threading
import time
from asyncio import selector_events, sslproto
from pathlib import Path

from taxii_federation.server.config import TlsConfig

log = logging.getLogger(__name__)

# TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305, as in Mozilla's
# "intermediate" profile less the DHE suites (no DH parameters to manage). TLS 1.3 suites are all AEAD and
# stay OpenSSL's defaults.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
RELOAD_CHECK_SECONDS = 1.0


def _file_stamp(path: Path | None) -> tuple | None:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return ("missing",)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ReloadingServerContext:
    """An SSLContext for the listener whose certificate, key and client CA bundle follow their files.

    The listener keeps one context for its whole life; at every ClientHello its servername callback (called
    with or without SNI) moves the connection to the context built from the files as they are now. Files
    are looked at no more than once a second, and a set that does not load (a key written before its
    certificate) leaves the last good context in place until the next look."""

    def __init__(self, tls: TlsConfig):
        self.tls = tls
        self._lock = threading.Lock()
        self._stamps = self._read_stamps()
        self._current = build_server_context(tls)
        self._checked = time.monotonic()
        self.listener_context = build_server_context(tls)
        self.listener_context.sni_callback = self._on_client_hello

    def _read_stamps(self) -> tuple:
        return tuple(_file_stamp(path) for path in (self.tls.cert, self.tls.key, self.tls.client_ca))

    def current(self) -> ssl.SSLContext:
        """The context of the files as they are now (at most RELOAD_CHECK_SECONDS old)."""
        if time.monotonic() - self._checked < RELOAD_CHECK_SECONDS:
            return self._current
        with self._lock:
            self._checked = time.monotonic()
            stamps = self._read_stamps()
            if stamps != self._stamps:
                try:
                    self._current = build_server_context(self.tls)
                    self._stamps = stamps
                    log.info("TLS files changed: new connections use %s", self.tls.cert)
                except (OSError, ssl.SSLError) as error:
                    log.warning("TLS files changed but do not load (%s); keeping the previous ones", error)
        return self._current

    def _on_client_hello(self, connection: ssl.SSLObject, server_name: str | None, _context) -> None:
        connection.context = self.current()


def build_server_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    # No renegotiation (a client-driven CPU sink) and no session tickets: every connection is verified
    # against the certificates and CA bundle of the moment, so a rotation or a removed CA applies at once.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.num_tickets = 0
    context.load_cert_chain(str(tls.cert), str(tls.key))
    if tls.client_ca is not None:
        context.load_verify_locations(cafile=str(tls.client_ca))
        required = tls.client_certificates == "required"
        context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS, less one flaw: when OpenSSL refuses a handshake (a client certificate from an unknown
    CA, expired, or missing where required) asyncio closes the connection without sending the alert
    OpenSSL has written, and the client learns only that the connection closed. This sends it first, so
    the client reads 'unknown ca' or 'certificate expired', and logs the refusal."""

    def _on_handshake_complete(self, handshake_exc):
        if handshake_exc is not None:
            with contextlib.suppress(Exception):
                self._process_outgoing()
            log.info("TLS handshake refused: %s", handshake_exc)
        super()._on_handshake_complete(handshake_exc)


class TlsEventLoop(asyncio.SelectorEventLoop):
    """The event loop of a TLS listener: asyncio's selector loop with _AlertingSSLProtocol (asyncio has no
    public way to choose its SSL protocol; tests/test_client_certificates.py checks the alerts arrive)."""

    def _make_ssl_transport(
        self,
        rawsock,
        protocol,
        sslcontext,
        waiter=None,
        *,
        server_side=False,
        server_hostname=None,
        extra=None,
        server=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        ssl_protocol = _AlertingSSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        selector_events._SelectorSocketTransport(self, rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport
