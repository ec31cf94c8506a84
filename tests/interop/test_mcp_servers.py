"""Checks that tests/interop/mcp_servers.py starts and that the SDK answers on the wire as
tests/interop/README.md says. Talks only to 127.0.0.1.

Run: .venv/bin/python -m pytest tests/interop
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SCRIPT = Path(__file__).resolve().parent / "mcp_servers.py"
ACCEPT_BOTH = "application/json, text/event-stream"
META_2026 = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "interop-test", "version": "0"},
}


def initialize(version: str = "2025-06-18") -> dict:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "interop-test", "version": "0"}},
    }


DISCOVER = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META_2026}}
DISCOVER_HEADERS = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}


def start(*args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line, f"mcp_servers.py exited with {proc.wait()}"
    return proc, json.loads(line)


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()  # EOF on a piped stdin stops it
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def urls():
    proc, urls = start()
    yield urls
    stop(proc)


def request(method: str, url: str, body: dict | None = None, headers: dict | None = None, read: bool = True):
    u = urlsplit(url)
    assert u.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    hdrs = {"Accept": ACCEPT_BOTH}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), json.dumps(body) if body is not None else None, hdrs)
    resp = conn.getresponse()
    data = resp.read().decode() if read else ""
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def jsonrpc_from(content_type: str, data: str) -> dict:
    if content_type.startswith("text/event-stream"):
        for line in data.splitlines():
            if line.startswith("data: "):
                return json.loads(line[6:])
        raise AssertionError(f"no data line in {data!r}")
    return json.loads(data)


def test_keys(urls):
    assert set(urls) == {"streamable_sse", "json_response", "stateless", "modern_2026", "legacy_sse", "auth", "killable"}
    assert urls["legacy_sse"].endswith("/sse")


@pytest.mark.parametrize(
    "name,content_type,session",
    [
        ("streamable_sse", "text/event-stream", True),
        ("json_response", "application/json", True),
        ("stateless", "text/event-stream", False),
        ("modern_2026", "application/json", False),
        ("killable", "application/json", True),
    ],
)
def test_initialize(urls, name, content_type, session):
    status, headers, data = request("POST", urls[name], initialize())
    assert status == 200
    assert headers["content-type"] == content_type
    assert ("mcp-session-id" in headers) == session
    result = jsonrpc_from(headers["content-type"], data)["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["serverInfo"] == {"name": f"interop-{name}", "version": "1.0.0"}


def test_initialize_2026_counter_offers_2025_11_25(urls):
    status, headers, data = request("POST", urls["json_response"], initialize("2026-07-28"))
    assert status == 200
    assert json.loads(data)["result"]["protocolVersion"] == "2025-11-25"


@pytest.mark.parametrize("name", ["modern_2026", "streamable_sse", "json_response", "stateless", "killable"])
def test_discover(urls, name):
    status, headers, data = request("POST", urls[name], DISCOVER, DISCOVER_HEADERS)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert "mcp-session-id" not in headers
    result = json.loads(data)["result"]
    assert result["supportedVersions"] == ["2026-07-28"]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == f"interop-{name}"
    assert "tools" in result["capabilities"]


def test_discover_errors(urls):
    url = urls["modern_2026"]
    status, _, data = request("POST", url, DISCOVER, {"MCP-Protocol-Version": "2026-07-28"})
    assert (status, json.loads(data)["error"]["code"]) == (400, -32020)
    bad = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
    status, _, data = request("POST", url, bad, DISCOVER_HEADERS)
    assert (status, json.loads(data)["error"]["code"]) == (400, -32602)
    # The envelope rung comes first: initialize without params._meta is -32602, with it -32601.
    status, _, data = request("POST", url, initialize(), {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "initialize"})
    assert (status, json.loads(data)["error"]["code"]) == (400, -32602)
    init = initialize()
    init["params"]["_meta"] = META_2026
    status, _, data = request("POST", url, init, {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "initialize"})
    assert (status, json.loads(data)["error"]["code"]) == (404, -32601)
    status, _, data = request("POST", url, DISCOVER, {"MCP-Protocol-Version": "2027-01-01", "Mcp-Method": "server/discover"})
    assert (status, json.loads(data)["error"]["code"]) == (400, -32020)  # header != body version


def test_tools_list_2026(urls):
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": META_2026}}
    status, _, data = request("POST", urls["modern_2026"], body, {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    assert status == 200
    assert sorted(t["name"] for t in json.loads(data)["result"]["tools"]) == ["add", "echo"]


def test_auth(urls):
    status, headers, _ = request("POST", urls["auth"], initialize())
    assert status == 401
    base = urls["auth"].rsplit("/mcp", 1)[0]
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in headers["www-authenticate"]
    status, _, _ = request("POST", urls["auth"], initialize(), {"Authorization": "Bearer wrong"})
    assert status == 401
    status, headers, data = request("POST", urls["auth"], initialize(), {"Authorization": "Bearer interop-valid-token"})
    assert status == 200 and "mcp-session-id" in headers
    status, _, data = request("GET", f"{base}/.well-known/oauth-protected-resource/mcp")
    assert status == 200 and json.loads(data)["resource"] == urls["auth"]


def test_legacy_sse(urls):
    u = urlsplit(urls["legacy_sse"])
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    try:
        sock.sendall(f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
        buf = b""
        # The body is chunked (Transfer-Encoding), SSE lines end in CRLF.
        pattern = re.compile(rb"event: endpoint\r\ndata: (\S+)\r\n\r\n")
        while not pattern.search(buf):
            chunk = sock.recv(4096)
            assert chunk, buf
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 200")
        assert b"content-type: text/event-stream; charset=utf-8" in buf.lower()
        endpoint = pattern.search(buf).group(1).decode()
        assert endpoint.startswith("/messages/?session_id=")
        status, _, data = request("POST", f"http://{u.netloc}{endpoint}", initialize(), {"Accept": "*/*"})
        assert (status, data) == (202, "Accepted")
        while b'"protocolVersion"' not in buf:
            chunk = sock.recv(4096)
            assert chunk
            buf += chunk
        assert b"event: message\r\ndata: {" in buf
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killable_restart_on_same_port():
    port = free_port()
    proc, urls = start("--only", "killable", "--port", str(port))
    url = f"http://127.0.0.1:{port}/mcp"
    assert urls == {"killable": url}
    assert request("POST", url, initialize())[0] == 200
    proc.kill()
    proc.wait()
    with pytest.raises(ConnectionRefusedError):
        request("POST", url, initialize())
    t0 = time.monotonic()
    proc, urls = start("--only", "killable", "--port", str(port))
    try:
        assert urls == {"killable": url}
        assert time.monotonic() - t0 < 10
        assert request("POST", url, initialize())[0] == 200
    finally:
        stop(proc)
