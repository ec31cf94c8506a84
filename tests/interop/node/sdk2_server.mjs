// One MCP server built with the official TypeScript SDK 2.x (@modelcontextprotocol/server
// with @modelcontextprotocol/node, the split packages that replace @modelcontextprotocol/sdk),
// wired the way their READMEs show, for mcp-health's interop matrix.
//
//   node sdk2_server.mjs --mode MODE [--port N]   (port 0: the OS picks)
//
// Modes:
//   modern     createMcpHandler(factory, {legacy: 'reject'}) through toNodeHandler: the
//              2026-07-28 revision only (server/discover, per-request envelope); a 2025-era
//              request (initialize) is refused with the unsupported-version error
//   dual       createMcpHandler(factory): 2026-07-28, and 2025-era requests served
//              statelessly by a fresh instance each (the SDK's default)
//   sessions   NodeStreamableHTTPServerTransport with a session id generator: the 2025
//              stateful wiring (Mcp-Session-Id, SSE replies), a server per session
//   json       as sessions, with enableJsonResponse (application/json replies)
//
// Every mode serves two tools (echo, add) at POST /mcp on 127.0.0.1 only, behind the
// SDK's localhost Host/Origin guards. Once listening it prints one JSON line on stdout:
//   {"url": "http://127.0.0.1:P/mcp"}
// Exits on SIGTERM/SIGINT, or when stdin reaches EOF.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import {
  NodeStreamableHTTPServerTransport,
  localhostHostValidation,
  localhostOriginValidation,
  toNodeHandler,
} from '@modelcontextprotocol/node';
import { McpServer, createMcpHandler, fromJsonSchema } from '@modelcontextprotocol/server';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const mode = args.mode ?? 'dual';
const port = Number(args.port ?? 0);
const MODES = ['modern', 'dual', 'sessions', 'json'];
if (!MODES.includes(mode)) {
  console.error(`unknown mode ${mode}; one of ${MODES.join(', ')}`);
  process.exit(2);
}

function newServer() {
  const server = new McpServer({ name: `interop-ts2-${mode}`, version: '1.0.0' });
  server.registerTool(
    'echo',
    {
      description: 'Echo the given text back.',
      inputSchema: fromJsonSchema({ type: 'object', properties: { text: { type: 'string' } } }),
    },
    async ({ text }) => ({ content: [{ type: 'text', text: String(text ?? '') }] }),
  );
  server.registerTool(
    'add',
    {
      description: 'Add two integers.',
      inputSchema: fromJsonSchema({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } } }),
    },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String((a ?? 0) + (b ?? 0)) }] }),
  );
  return server;
}

const notFound = (res) => {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
};

let handle;
if (mode === 'modern' || mode === 'dual') {
  const mcp = createMcpHandler(() => newServer(), mode === 'modern' ? { legacy: 'reject' } : {});
  handle = toNodeHandler(mcp);
} else {
  const sessions = new Map(); // session id -> transport
  handle = async (req, res) => {
    const sid = req.headers['mcp-session-id'];
    if (sid) {
      const transport = sessions.get(sid);
      if (!transport) return notFound(res);
      await transport.handleRequest(req, res);
      return;
    }
    if (req.method !== 'POST') return notFound(res);
    const transport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: mode === 'json',
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await newServer().connect(transport);
    await transport.handleRequest(req, res);
  };
}

const validateHost = localhostHostValidation();
const validateOrigin = localhostOriginValidation();
const http = createServer(async (req, res) => {
  if (!validateHost(req, res) || !validateOrigin(req, res)) return;
  if (new URL(req.url ?? '/', 'http://127.0.0.1').pathname !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  try {
    await handle(req, res);
  } catch (e) {
    console.error(e);
    if (!res.headersSent) res.writeHead(500).end();
  }
});
http.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${http.address().port}/mcp` })}\n`);
});

function stop() {
  http.close();
  http.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
