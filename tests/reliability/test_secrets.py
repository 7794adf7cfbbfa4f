"""Scenario 10: secrets. The token-absence check itself runs after *every* scenario of this
folder (the `harness` fixture scans the captured output, every log record and every text
column of every table). Here: plain http to a non-loopback host is refused before anything is
sent, and TLS certificates are verified by default."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from reliability_support import TOKEN, Harness, token_in_tables

from rc_extract.client import ReadyCloudClient
from rc_extract.errors import APIConnectionError, InsecureTransportError

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize(
    "url", ["http://example.com", "http://10.0.0.8:8000", "http://readycloud.com.evil/"]
)
def test_plain_http_off_host_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransportError) as caught:
        ReadyCloudClient(url, TOKEN)
    assert "https" in str(caught.value) and TOKEN not in str(caught.value)


def test_cli_refuses_plain_http_with_exit_2(harness: Harness, sqlite_target) -> None:
    server = harness.sandbox(orders=10)
    env = harness.env(server, sqlite_target, READYCLOUD_BASE_URL="http://example.com")
    proc = harness.run_cli(["sync"], env)
    assert proc.returncode == 2
    assert "https" in proc.stderr and TOKEN not in proc.stderr + proc.stdout
    assert not token_in_tables(sqlite_target)


def test_tls_verification_is_on_by_default() -> None:
    client = ReadyCloudClient("https://www.readycloud.com", TOKEN)
    try:
        context = client._http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
def test_self_signed_certificate_is_rejected(tmp_path: Path) -> None:
    """A real TLS handshake with a self-signed server fails; nothing is retried into success."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    received.append(tls.recv(4096))
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ReadyCloudClient(f"https://localhost:{port}", TOKEN, deadline=2, timeout=1)
    try:
        with pytest.raises(APIConnectionError) as caught:
            client.list_orgs()
        assert "certificate" in str(caught.value).lower() or "ssl" in str(caught.value).lower()
        assert TOKEN not in str(caught.value)
        assert not any(TOKEN.encode() in r for r in received), "the token crossed a bad TLS link"
    finally:
        client.close()
        stop.set()
        thread.join(2)
        listener.close()


def test_the_table_scan_finds_a_planted_token(harness: Harness, sqlite_target) -> None:
    """Negative control for the scan that runs after every scenario."""
    import sqlalchemy as sa
    from support import warehouse_engine

    server = harness.sandbox(orders=10)
    harness.engine(server, sqlite_target).sync_incremental()
    engine = warehouse_engine(sqlite_target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET message = :m"), {"m": f"x{TOKEN}y"})
    engine.dispose()
    assert token_in_tables(sqlite_target) == ["orders.message"]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET message = NULL"))
    engine.dispose()
