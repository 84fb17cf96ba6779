// Node's `http` and `ws` as the clients of an ASGI application served by
// trionet (tests/asgi_apps/fastapi_app.py), in the ASGI tests.
//
//   node asgi_client.js BASE_URL
//
// Posts a JSON item to /items (and an invalid one), reads /stream?count=4
// (chunked), then opens ws://.../ws with the subprotocol "chat", sends
// "from node", reads the echo and closes with 4003. Prints one JSON line:
//
//   {"item": {"status": N, "body": {...}}, "invalid": {"status": N},
//    "stream": {"status": N, "transferEncoding": "...", "body": "..."},
//    "ws": {"protocol": "...", "echo": "...", "close": {"code": N}}}
'use strict';
const http = require('http');
const WebSocket = require('ws');

const [base] = process.argv.slice(2);

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = data ? { 'content-type': 'application/json', 'content-length': data.length } : {};
    const req = http.request(base + path, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function websocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base.replace('http', 'ws') + '/ws', ['chat']);
    const result = {};
    ws.on('open', () => {
      result.protocol = ws.protocol;
      ws.send('from node');
    });
    ws.on('message', (data) => {
      result.echo = data.toString('utf8');
      ws.close(4003, 'node is done');
    });
    ws.on('close', (code) => {
      result.close = { code };
      resolve(result);
    });
    ws.on('error', reject);
  });
}

(async () => {
  const item = await request('POST', '/items', { name: 'lamp', price: 10 });
  const invalid = await request('POST', '/items', { name: 'lamp' });
  const stream = await request('GET', '/stream?count=4');
  const ws = await websocket();
  process.stdout.write(JSON.stringify({
    item: { status: item.res.statusCode, body: JSON.parse(item.body) },
    invalid: { status: invalid.res.statusCode },
    stream: {
      status: stream.res.statusCode,
      transferEncoding: stream.res.headers['transfer-encoding'],
      body: stream.body,
    },
    ws,
  }) + '\n');
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
