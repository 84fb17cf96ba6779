// A Node `ws` WebSocketServer, the peer of the trionet WebSocket client in the
// interop tests. It serves a given number of connections, then exits: 0 if
// no socket or server error happened.
//
//   node ws_server.js PLAN_FILE
//
// PLAN_FILE holds JSON:
//
//   {
//     "connections": N,              // exit after N connections closed
//     "perMessageDeflate": false,    // ws's server default; true agrees to it
//     "protocols": ["chat.v1"],      // optional: subprotocols spoken,
//                                    // preferred first (handleProtocols picks
//                                    // the first the client offered, or none)
//     "routes": {PATH: ROUTE, ...}   // what to do, by the request's path
//   }
//
// A ROUTE is {"send": [MESSAGE, ...], "on_message": ACTION}: the messages
// are sent as soon as the connection opens, then every message received is
// met with ACTION:
//
//   {"do": "echo"}                        send it back, text as text, binary
//                                         as binary (also for a path with no
//                                         route)
//   {"do": "close", "code": N, "reason": "..."}   close(N, reason); without
//                                         a code, close() (a close frame
//                                         without a status code)
//   {"do": "terminate"}                   destroy the socket (no close frame)
//
// A MESSAGE is {"text": "..."} or {"base64": "..."} (binary).
//
// It prints {"port": N} once listening, then, at each connection's 'close':
//
//   {"path": the request's path,
//    "protocol": the agreed subprotocol ("" for none),
//    "extensions": ws.extensions ("permessage-deflate" or ""),
//    "offered_extensions": the request's Sec-WebSocket-Extensions or null,
//    "response_extensions": the 101's Sec-WebSocket-Extensions or null,
//    "received": [SUMMARY, ...],   // as ws_client.js reports them
//    "close": {"code": N, "reason": "..."},
//    "errors": [messages of the socket's 'error' events]}
'use strict';
const { summary, send } = require('./ws_common');
const fs = require('fs');
const { WebSocketServer } = require('ws');

const [planFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const options = {
  port: 0,
  host: '127.0.0.1',
  perMessageDeflate: plan.perMessageDeflate ?? false,
};
if (plan.protocols) {
  options.handleProtocols = (offered) => plan.protocols.find((p) => offered.has(p)) ?? false;
}
const server = new WebSocketServer(options);
let closed = 0;

server.on('error', (err) => {
  console.error(`ws_server.js: server error: ${err.message}`);
  process.exitCode = 1;
});
server.on('headers', (headers, request) => {
  const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
  request.responseExtensions = line ? line.slice(line.indexOf(':') + 1).trim() : null;
});
server.on('connection', (ws, request) => {
  const path = new URL(request.url, 'http://localhost').pathname;
  const route = (plan.routes || {})[path] || {};
  const action = route.on_message || { do: 'echo' };
  const received = [];
  const errors = [];

  ws.on('message', (data, isBinary) => {
    received.push(summary(data, isBinary));
    if (action.do === 'echo') ws.send(data, { binary: isBinary });
    else if (action.do === 'close' && action.code === undefined) ws.close();
    else if (action.do === 'close') ws.close(action.code, action.reason ?? '');
    else if (action.do === 'terminate') ws.terminate();
  });
  ws.on('error', (err) => errors.push(err.message));
  ws.on('close', (code, reason) => {
    report({
      path,
      protocol: ws.protocol,
      extensions: ws.extensions,
      offered_extensions: request.headers['sec-websocket-extensions'] ?? null,
      response_extensions: request.responseExtensions,
      received,
      close: { code, reason: reason.toString('utf8') },
      errors,
    });
    closed += 1;
    if (closed === plan.connections) server.close();
  });
  for (const message of route.send || []) send(ws, message);
});
server.on('listening', () => report({ port: server.address().port }));
