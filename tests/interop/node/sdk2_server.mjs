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
//   {"url": "http://127.0.0.1:P/mcp", "tools": "http://127.0.0.1:P/tools"}
// PUT /tools with a JSON array of tool definitions ({name, description, inputSchema})
// changes the tools at runtime through the SDK's own API: every live server (a session's)
// updates a kept tool's description (RegisteredTool.update), removes a dropped one
// (remove) and registers a new one (registerTool); a server made per request (modern,
// dual) is built from the current definitions.
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
import { serverArgs } from './args.mjs';

const { mode, port } = serverArgs(['modern', 'dual', 'sessions', 'json'], 'dual');

// The tool definitions every server serves now (PUT /tools replaces them).
let toolDefs = [
  {
    name: 'echo',
    description: 'Echo the given text back.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
  },
  {
    name: 'add',
    description: 'Add two integers.',
    inputSchema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } } },
  },
];

async function call(name, args) {
  if (name === 'add') return { content: [{ type: 'text', text: String((args.a ?? 0) + (args.b ?? 0)) }] };
  return { content: [{ type: 'text', text: String(args.text ?? '') }] };
}

function register(server, def) {
  return server.registerTool(
    def.name,
    { description: def.description, inputSchema: fromJsonSchema(def.inputSchema ?? { type: 'object' }) },
    async (args) => call(def.name, args ?? {}),
  );
}

// Live servers (one per session) and their registered tools by name.
const live = new Map(); // McpServer -> Map(name -> RegisteredTool)

function newServer() {
  const server = new McpServer({ name: `interop-ts2-${mode}`, version: '1.0.0' });
  live.set(server, new Map(toolDefs.map((d) => [d.name, register(server, d)])));
  return server;
}

function setTools(defs) {
  toolDefs = defs;
  for (const [server, tools] of live) {
    for (const [name, tool] of tools) {
      if (!defs.some((d) => d.name === name)) {
        tool.remove();
        tools.delete(name);
      }
    }
    for (const d of defs) {
      const tool = tools.get(d.name);
      if (tool) tool.update({ description: d.description });
      else tools.set(d.name, register(server, d));
    }
  }
}

const notFound = (res) => {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
};

let handle;
if (mode === 'modern' || mode === 'dual') {
  // A server per request: built from the current definitions, never kept.
  const perRequest = () => {
    const server = newServer();
    live.delete(server);
    return server;
  };
  const mcp = createMcpHandler(perRequest, mode === 'modern' ? { legacy: 'reject' } : {});
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
    const server = newServer();
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
      live.delete(server);
    };
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
}

const validateHost = localhostHostValidation();
const validateOrigin = localhostOriginValidation();
const http = createServer(async (req, res) => {
  if (!validateHost(req, res) || !validateOrigin(req, res)) return;
  const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
  if (path === '/tools' && req.method === 'PUT') {
    let body = '';
    for await (const chunk of req) body += chunk;
    let defs;
    try {
      defs = JSON.parse(body);
    } catch {
      defs = null;
    }
    if (!Array.isArray(defs)) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'a JSON array of tools' }));
      return;
    }
    setTools(defs);
    res.writeHead(204).end();
    return;
  }
  if (path !== '/mcp') {
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
  const base = `http://127.0.0.1:${http.address().port}`;
  process.stdout.write(`${JSON.stringify({ url: `${base}/mcp`, tools: `${base}/tools` })}\n`);
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
