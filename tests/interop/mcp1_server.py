"""One MCP server built with the official Python SDK's 1.x line (mcp==1.30.0,
the FastMCP 1.0 API: `from mcp.server.fastmcp import FastMCP`), for mcp-health's
interop matrix (tests/it/interop_matrix.rs). Runs in .venv-mcp1 (scripts/setup-interop.sh).

    .venv-mcp1/bin/python tests/interop/mcp1_server.py --mode MODE [--port N]

Modes: `streamable` (stateful, SSE replies, the SDK default), `json` (stateful,
json_response=True), `stateless` (stateless_http=True), `sse` (legacy HTTP+SSE),
`stdio` (stdio transport, for the stdio-to-HTTP bridges). The HTTP modes bind
127.0.0.1 and print one JSON line {"url": ...} on stdout once the socket
listens; they exit when stdin reaches EOF (when it is a pipe) or on SIGTERM.
"""

import argparse
import json
import os
import socket
import stat
import sys
import threading

from mcp.server.fastmcp import FastMCP


def new_server(mode: str, **settings) -> FastMCP:
    mcp = FastMCP(f"interop-py1-{mode}", log_level="WARNING", **settings)

    @mcp.tool(description="Echo the given text back.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["streamable", "json", "stateless", "sse", "stdio"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    if args.mode == "stdio":
        new_server("stdio").run("stdio")
        return

    import uvicorn

    settings = {
        "streamable": {},
        "json": {"json_response": True},
        "stateless": {"stateless_http": True},
        "sse": {},
    }[args.mode]
    mcp = new_server(args.mode, **settings)
    app = mcp.sse_app() if args.mode == "sse" else mcp.streamable_http_app()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    path = "/sse" if args.mode == "sse" else "/mcp"

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    def watch_stdin() -> None:
        sys.stdin.read()
        server.should_exit = True

    if stat.S_ISFIFO(os.fstat(0).st_mode):
        threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{port}{path}"}), flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
