// One MCP server built with the official TypeScript SDK (@modelcontextprotocol/sdk
// 1.x), the way its README and examples wire it, for mcp-health's interop matrix.
//
//   node sdk_server.mjs --mode MODE [--port N] [--page-size N] [--upstream-file PATH]   (port 0: the OS picks)
//
// Modes:
//   sse        stateful (Mcp-Session-Id), POST replies as text/event-stream (SDK default)
//   eventstore stateful with an event store (resumable): every SSE reply opens with
//              the priming event (an `id:` line and an empty `data:` line, for
//              protocol 2025-11-25+), and tools/list first sends a log
//              notification, a progress notification and ping, roots/list and
//              elicitation/create requests on the same stream, then the response
//   json       stateful, enableJsonResponse: application/json replies
//   stateless  sessionIdGenerator undefined, a new server per request
//   legacy     HTTP+SSE (2024-11-05): GET /sse, POST /messages?sessionId=...
//   auth       stateful SSE behind requireBearerAuth, with RFC 9728 metadata
//              (mcpAuthMetadataRouter); the valid token is `interop-ts-token`
//   notools    stateful SSE; the server has a prompt and no tools capability
//
// --page-size N: tools/list answers N tools a page, with `nextCursor` (default: one page).
// --upstream-file PATH: the tool `upstream_status` (listed only when a test
// PUTs it) reads PATH: its text when the file is there, isError when it is not,
// so a test makes the server's "upstream" fail by removing the file.
//
// Binds 127.0.0.1 only. Once listening it prints one JSON line on stdout:
//   {"url": "http://127.0.0.1:P/mcp", "sessions": "http://127.0.0.1:P/sessions",
//    "tools": "http://127.0.0.1:P/tools"}
// PUT /tools with a JSON array of tool definitions replaces the tools the
// server lists from then on (tests change the catalog at runtime).
// GET /calls answers {"TOOL": N, ...}: how many tools/call each tool got.
// GET /sessions answers {"open": N, "opened": N, "deleted": N}: the sessions
// the server holds right now (a session is dropped when its transport closes,
// e.g. on DELETE), how many it ever opened, and how many DELETEs ended one.
// Exits on SIGTERM/SIGINT, or when stdin reaches EOF.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import express from 'express';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { mcpAuthMetadataRouter, getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import {
  CallToolRequestSchema,
  EmptyResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { serverArgs } from './args.mjs';

const args = serverArgs(['sse', 'eventstore', 'json', 'stateless', 'legacy', 'auth', 'notools'], 'sse', {
  'page-size': { type: 'string' },
  'upstream-file': { type: 'string' },
});
const { mode, port } = args;
const TOKEN = 'interop-ts-token';
const pageSize = Number(args['page-size'] ?? 0);
let TOOLS = [
  { name: 'echo', description: 'Echo the given text back.', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
  { name: 'add', description: 'Add two integers.', inputSchema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } } } },
];

function newServer() {
  const tools = mode !== 'notools';
  const server = new Server(
    { name: `interop-ts-${mode}`, version: '1.0.0' },
    { capabilities: tools ? { tools: {}, logging: {} } : { prompts: {} } },
  );
  if (!tools) {
    server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: [{ name: 'hello' }] }));
    server.setRequestHandler(GetPromptRequestSchema, async () => ({ messages: [] }));
    return server;
  }
  server.setRequestHandler(ListToolsRequestSchema, async (request, extra) => {
    if (mode === 'eventstore') {
      // Everything a chatty server may put on the reply stream before the
      // response: a client must skip it all. The requests are never answered.
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'listing tools' } });
      await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: 'p1', progress: 1, total: 2 } });
      for (const method of ['ping', 'roots/list']) {
        extra.sendRequest({ method }, EmptyResultSchema, { timeout: 2000 }).catch(() => {});
      }
      extra
        .sendRequest({ method: 'elicitation/create', params: { message: 'ok?', requestedSchema: { type: 'object', properties: {} } } }, EmptyResultSchema, { timeout: 2000 })
        .catch(() => {});
    }
    if (pageSize > 0) {
      const start = Number(request.params?.cursor ?? 0);
      const end = start + pageSize;
      return { tools: TOOLS.slice(start, end), ...(end < TOOLS.length ? { nextCursor: String(end) } : {}) };
    }
    return { tools: TOOLS };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const name = request.params.name;
    calls[name] = (calls[name] ?? 0) + 1;
    if (name === 'upstream_status') {
      try {
        const text = readFileSync(args['upstream-file'] ?? '', 'utf8');
        return { content: [{ type: 'text', text }], structuredContent: { status: text.trim() } };
      } catch (e) {
        // What a real server leaks when its upstream fails: a credential in the message.
        return { content: [{ type: 'text', text: `upstream unavailable (${e.code}); key sk_live_51HxTESTk3yN0tF0rLogs000 rejected` }], isError: true };
      }
    }
    return { content: [{ type: 'text', text: JSON.stringify(request.params.arguments ?? {}) }] };
  });
  return server;
}

const app = createMcpExpressApp({ host: '127.0.0.1' });
const sessions = new Map(); // session id -> transport
const counts = { opened: 0, deleted: 0 };
const calls = {}; // tool name -> tools/call count
app.get('/sessions', (req, res) => res.json({ open: sessions.size, ...counts }));
app.get('/calls', (req, res) => res.json(calls));
app.put('/tools', express.json(), (req, res) => {
  if (!Array.isArray(req.body)) {
    res.status(400).json({ error: 'a JSON array of tools' });
    return;
  }
  TOOLS = req.body;
  res.json({ count: TOOLS.length });
});

const mcpRoute = [];
if (mode === 'auth') {
  // The metadata router needs the server URL, known once listening: route lazily.
  app.use((req, res, next) => mcpRoute[0](req, res, next));
  app.use('/mcp', (req, res, next) => mcpRoute[1](req, res, next));
}

async function statefulPost(req, res) {
  const sid = req.headers['mcp-session-id'];
  if (sid) {
    const transport = sessions.get(sid);
    if (!transport) {
      res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      return;
    }
    await transport.handleRequest(req, res, req.body);
    return;
  }
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    enableJsonResponse: mode === 'json',
    eventStore: mode === 'eventstore' ? new InMemoryEventStore() : undefined,
    retryInterval: mode === 'eventstore' ? 1000 : undefined,
    onsessioninitialized: (id) => {
      sessions.set(id, transport);
      counts.opened += 1;
    },
  });
  transport.onclose = () => {
    if (transport.sessionId) sessions.delete(transport.sessionId);
  };
  await newServer().connect(transport);
  await transport.handleRequest(req, res, req.body);
}

async function statefulOther(req, res) {
  const transport = sessions.get(req.headers['mcp-session-id']);
  if (transport && req.method === 'DELETE') counts.deleted += 1;
  if (!transport) {
    res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
    return;
  }
  await transport.handleRequest(req, res);
}

if (mode === 'stateless') {
  app.post('/mcp', async (req, res) => {
    const server = newServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const notAllowed = (req, res) => res.status(405).set('Allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  app.get('/mcp', notAllowed);
  app.delete('/mcp', notAllowed);
} else if (mode === 'legacy') {
  app.get('/sse', async (req, res) => {
    const transport = new SSEServerTransport('/messages', res);
    sessions.set(transport.sessionId, transport);
    res.on('close', () => sessions.delete(transport.sessionId));
    await newServer().connect(transport);
  });
  app.post('/messages', async (req, res) => {
    const transport = sessions.get(String(req.query.sessionId));
    if (!transport) {
      res.status(400).send('unknown session');
      return;
    }
    await transport.handlePostMessage(req, res, req.body);
  });
} else {
  app.post('/mcp', statefulPost);
  app.get('/mcp', statefulOther);
  app.delete('/mcp', statefulOther);
}

const http = app.listen(port, '127.0.0.1', () => {
  const base = `http://127.0.0.1:${http.address().port}`;
  if (mode === 'auth') {
    const mcpUrl = new URL(`${base}/mcp`);
    mcpRoute[0] = mcpAuthMetadataRouter({
      oauthMetadata: {
        issuer: `${base}/`,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        response_types_supported: ['code'],
      },
      resourceServerUrl: mcpUrl,
      scopesSupported: ['mcp'],
      resourceName: 'interop-ts-auth',
    });
    mcpRoute[1] = requireBearerAuth({ verifier: verifierFor(), resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(mcpUrl) });
  }
  const url = mode === 'legacy' ? `${base}/sse` : `${base}/mcp`;
  process.stdout.write(`${JSON.stringify({ url, sessions: `${base}/sessions`, tools: `${base}/tools` })}\n`);
});

function verifierFor() {
  return {
    async verifyAccessToken(token) {
      if (token !== TOKEN) throw new InvalidTokenError('unknown token');
      return { token, clientId: 'interop', scopes: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 };
    },
  };
}

function stop() {
  http.close();
  http.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
