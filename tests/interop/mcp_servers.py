#!/usr/bin/env python3
"""Real MCP servers, built with the official MCP Python SDK (mcp 2.x), for interop tests.

Nobody in this project wrote these servers: they are the SDK's own Streamable HTTP,
legacy HTTP+SSE and bearer-auth apps, served by uvicorn on 127.0.0.1.

Usage:
    .venv/bin/python tests/interop/mcp_servers.py
        Starts every server on an OS-chosen port and prints ONE line of JSON to stdout
        once all of them are listening, e.g.
        {"streamable_sse": "http://127.0.0.1:41001/mcp", "json_response": ..., "stateless": ...,
         "modern_2026": ..., "legacy_sse": "http://127.0.0.1:41005/sse", "auth": ..., "killable": ...}

    .venv/bin/python tests/interop/mcp_servers.py --only killable --port 45123
        Starts just that server on that port (kill the process and run it again to
        restart it on the same port). --only takes a comma-separated list; --port
        needs exactly one name. `mutable_tools` (tools changed at runtime through
        PUT/DELETE /tools/NAME) starts only when named.

The process runs until SIGTERM/SIGINT, or until stdin reaches EOF when stdin is a
pipe (a parent that spawns it with a piped stdin can just close it; with stdin
from /dev/null or a terminal, EOF is ignored). --stdin-watch yes|no overrides that.

Nothing but the JSON line is written to stdout; logs go to stderr.
See README.md beside this file for what each server answers on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import stat
import sys
import threading
from typing import Callable

# Configure logging before the SDK does (MCPServer calls logging.basicConfig), so that
# every log line goes to stderr and stdout carries only the JSON line.
logging.basicConfig(
    level=os.environ.get("MCP_INTEROP_LOG_LEVEL", "WARNING").upper(),
    stream=sys.stderr,
    format="mcp_servers %(levelname)s %(name)s: %(message)s",
)

import uvicorn  # noqa: E402
from mcp.server.auth.provider import AccessToken  # noqa: E402
from mcp.server.auth.settings import AuthSettings  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

HOST = "127.0.0.1"
VALID_TOKEN = "interop-valid-token"

SERVER_NAMES = (
    "streamable_sse",
    "json_response",
    "stateless",
    "modern_2026",
    "legacy_sse",
    "auth",
    "killable",
)


def new_server(name: str, **kwargs) -> MCPServer:
    """An MCPServer with two tools, so tools/list returns something."""
    mcp = MCPServer(
        name=f"interop-{name}",
        version="1.0.0",
        instructions=f"Interop test server '{name}' for mcp-health.",
        log_level=os.environ.get("MCP_INTEROP_LOG_LEVEL", "WARNING").upper(),
        **kwargs,
    )

    @mcp.tool(description="Echo the given text back.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    return mcp


class StaticTokenVerifier:
    """Accepts exactly one bearer token."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if token == VALID_TOKEN:
            return AccessToken(token=token, client_id="interop-client", scopes=[])
        return None


# Each builder takes the base URL (http://127.0.0.1:PORT) and returns (starlette_app, endpoint_path).
def build_streamable_sse(base: str):
    # Stateful (Mcp-Session-Id), POST answers are text/event-stream. The SDK default.
    return new_server("streamable_sse").streamable_http_app(host=HOST), "/mcp"


def build_json_response(base: str):
    # Stateful (Mcp-Session-Id), POST answers are application/json.
    return new_server("json_response").streamable_http_app(host=HOST, json_response=True), "/mcp"


def build_stateless(base: str):
    # No Mcp-Session-Id; each POST is served by a fresh transport. POST answers are SSE.
    return new_server("stateless").streamable_http_app(host=HOST, stateless_http=True), "/mcp"


def build_modern_2026(base: str):
    # Same SDK app as every other Streamable HTTP server here (each of them also answers
    # 2026-07-28 requests, routed on the MCP-Protocol-Version header); this one is
    # configured the way a 2026-era deployment would be: stateless, JSON answers.
    app = new_server("modern_2026").streamable_http_app(host=HOST, stateless_http=True, json_response=True)
    return app, "/mcp"


def build_legacy_sse(base: str):
    # Legacy HTTP+SSE (2024-11-05): GET /sse opens the stream, first event `endpoint`
    # names /messages/?session_id=..., where JSON-RPC is POSTed (202), answers come on the stream.
    return new_server("legacy_sse").sse_app(host=HOST), "/sse"


def build_auth(base: str):
    # Stateful Streamable HTTP (SSE answers) behind the SDK's bearer-auth middleware.
    resource = f"{base}/mcp"
    mcp = new_server(
        "auth",
        token_verifier=StaticTokenVerifier(),
        auth=AuthSettings(
            # Only advertised in the protected-resource metadata; nothing serves or calls it.
            issuer_url=f"{base}/issuer",
            resource_server_url=resource,
            validate_token_resource=False,
        ),
    )
    return mcp.streamable_http_app(host=HOST), "/mcp"


def build_killable(base: str):
    # Plain stateful Streamable HTTP with JSON answers; run it alone with --only killable --port P.
    return new_server("killable").streamable_http_app(host=HOST, json_response=True), "/mcp"


def build_mutable_tools(base: str):
    # Stateful Streamable HTTP (JSON answers) whose tools a test changes at runtime through
    # the SDK's own add_tool/remove_tool: PUT /tools/NAME with {"description": "..."} adds
    # (or replaces) a tool NAME taking one string `text`; DELETE /tools/NAME removes it.
    # Both answer {"tools": [names]}. Not started unless named with --only.
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    mcp = new_server("mutable_tools")

    @mcp.custom_route("/tools/{name}", methods=["PUT", "DELETE"])
    async def change_tools(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        with contextlib.suppress(Exception):
            mcp.remove_tool(name)
        if request.method == "PUT":
            body = await request.json()

            def tool(text: str) -> str:
                return text

            mcp.add_tool(tool, name=name, description=body.get("description"))
        return JSONResponse({"tools": sorted(t.name for t in await mcp.list_tools())})

    return mcp.streamable_http_app(host=HOST, json_response=True), "/mcp"


BUILDERS: dict[str, Callable[[str], tuple]] = {
    "streamable_sse": build_streamable_sse,
    "json_response": build_json_response,
    "stateless": build_stateless,
    "modern_2026": build_modern_2026,
    "legacy_sse": build_legacy_sse,
    "auth": build_auth,
    "killable": build_killable,
    "mutable_tools": build_mutable_tools,
}


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (several run in one loop)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def stdin_is_pipe() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def wait_stdin_eof() -> None:
    """Returns when stdin reaches EOF. Reads in a daemon thread, so a blocked read never delays exit."""
    loop = asyncio.get_running_loop()
    eof = loop.create_future()

    def read_all() -> None:
        # os.read on the raw fd: no BufferedReader lock that interpreter shutdown would wait for.
        try:
            fd = sys.stdin.fileno()
            while os.read(fd, 4096):
                pass
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: eof.done() or eof.set_result(None))

    threading.Thread(target=read_all, name="stdin-eof", daemon=True).start()
    await eof


async def main_async(names: list[str], port: int | None, watch_stdin: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    servers: list[tuple[str, QuietServer, socket.socket, str]] = []
    for name in names:
        sock = bind(port if port is not None else 0)
        actual = sock.getsockname()[1]
        base = f"http://{HOST}:{actual}"
        app, path = BUILDERS[name](base)
        config = uvicorn.Config(
            app,
            log_level=os.environ.get("MCP_INTEROP_LOG_LEVEL", "warning").lower(),
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        servers.append((name, QuietServer(config), sock, base + path))

    tasks = [asyncio.create_task(srv.serve(sockets=[sock]), name=name) for name, srv, sock, _ in servers]

    # Wait until every server has run its lifespan startup and is accepting.
    while not all(srv.started for _, srv, _, _ in servers):
        for t in tasks:
            if t.done():
                exc = t.exception()
                print(f"mcp_servers: server {t.get_name()} failed to start: {exc!r}", file=sys.stderr)
                return 1
        await asyncio.sleep(0.02)

    urls = {name: url for name, _, _, url in servers}
    sys.stdout.write(json.dumps(urls) + "\n")
    sys.stdout.flush()

    waiters = [asyncio.create_task(stop.wait())]
    if watch_stdin:
        waiters.append(asyncio.create_task(wait_stdin_eof()))
    waiters.extend(tasks)
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)

    # Open SSE streams are cancelled at shutdown; uvicorn logs that as an error. Not one here.
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    for _, srv, _, _ in servers:
        srv.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=4)
    for t in waiters:
        t.cancel()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve the MCP SDK's reference servers on 127.0.0.1.")
    parser.add_argument(
        "--only",
        default=",".join(SERVER_NAMES),
        help=f"comma-separated server names to start (default: all of {', '.join(SERVER_NAMES)})",
    )
    parser.add_argument("--port", type=int, default=None, help="fixed port; only with exactly one --only name")
    parser.add_argument(
        "--stdin-watch",
        choices=("auto", "yes", "no"),
        default="auto",
        help="exit when stdin reaches EOF (auto: only when stdin is a pipe)",
    )
    args = parser.parse_args()

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown or not names:
        parser.error(f"unknown server name(s) {unknown}; choose from {', '.join(BUILDERS)}")
    if args.port is not None and len(names) != 1:
        parser.error("--port needs exactly one --only name")

    watch = {"yes": True, "no": False, "auto": stdin_is_pipe()}[args.stdin_watch]
    try:
        return asyncio.run(main_async(names, args.port, watch))
    except OSError as exc:
        print(f"mcp_servers: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
