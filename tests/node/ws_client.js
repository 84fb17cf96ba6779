// A Node `ws` WebSocket client, the peer of trionet WebSocket servers in the
// interop tests.
//
//   node ws_client.js PLAN_FILE
//
// PLAN_FILE holds JSON: {"sessions": [SESSION, ...]}. The sessions run one
// after the other, each on its own connection:
//
//   {
//     "url": "ws://127.0.0.1:PORT/path",
//     "protocols": ["chat.v2", "chat.v1"],   // optional: subprotocols offered
//     "perMessageDeflate": true,              // optional: ws's client default
//     "messages": [MESSAGE, ...],             // sent in order, each after the
//                                             // previous one's echo came back
//     "then": "close" | "terminate" | "wait", // once every echo came back
//                                             // (default "close"):
//                                             // close(code, reason), destroy
//                                             // the socket at once, or wait
//                                             // for the server to close
//     "code": 1000, "reason": "",             // optional: for "close"; a
//                                             // null code closes without one
//     "ping": "payload"                       // optional: ping on opening
//   }
//
// A MESSAGE is {"text": "..."} (sent as a text message) or {"base64": "..."}
// (sent as a binary message).
//
// At each session's 'close' event one JSON line is printed:
//
//   {"protocol": the agreed subprotocol ("" for none),
//    "extensions": ws.extensions ("permessage-deflate" or ""),
//    "response_extensions": the 101's Sec-WebSocket-Extensions or null,
//    "received": [SUMMARY, ...],   // every message received, in order
//    "pongs": [payloads of the pongs received, as text],
//    "close": {"code": N, "reason": "..."},
//    "errors": [messages of 'error' events]}
//
// where a SUMMARY is {"type": "text"|"binary", "length": bytes,
// "sha256": hex} plus "text" for a text message of at most 100 bytes.
'use strict';
const { summary, send } = require('./ws_common');
const fs = require('fs');
const WebSocket = require('ws');

const [planFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');

function runSession(session, done) {
  const options = {};
  if ('perMessageDeflate' in session) options.perMessageDeflate = session.perMessageDeflate;
  const ws = new WebSocket(session.url, session.protocols || [], options);
  const messages = session.messages || [];
  const then = session.then ?? 'close';
  const received = [];
  const errors = [];
  const pongs = [];
  let responseExtensions = null;

  const next = () => {
    if (received.length < messages.length) {
      send(ws, messages[received.length]);
    } else if (then === 'close') {
      if (session.code === null) ws.close();
      else ws.close(session.code ?? 1000, session.reason ?? '');
    } else if (then === 'terminate') {
      ws.terminate();
    } // "wait": the server closes
  };

  ws.on('upgrade', (response) => {
    responseExtensions = response.headers['sec-websocket-extensions'] ?? null;
  });
  ws.on('open', () => {
    if ('ping' in session) ws.ping(session.ping);
    next();
  });
  ws.on('pong', (data) => pongs.push(data.toString('utf8')));
  ws.on('message', (data, isBinary) => {
    received.push(summary(data, isBinary));
    next();
  });
  ws.on('error', (err) => errors.push(err.message));
  ws.on('close', (code, reason) => {
    report({
      protocol: ws.protocol,
      extensions: ws.extensions,
      response_extensions: responseExtensions,
      received,
      pongs,
      close: { code, reason: reason.toString('utf8') },
      errors,
    });
    done();
  });
}

let index = 0;
const runNext = () => {
  if (index < plan.sessions.length) runSession(plan.sessions[index++], runNext);
};
runNext();
