// A Node `http` (or `https`) server, the peer of the trionet HTTP client
// (`trionet.http.Client`) in the interop tests. It runs until SIGTERM.
//
//   node http_client_peer.js CONFIG_JSON
//
// CONFIG_JSON (a JSON object on the command line; every key optional):
//
//   {
//     "keepAliveTimeout": MS,   // server.keepAliveTimeout (Node's default: 5000)
//     "path": PATH,             // listen on this Unix socket (not 127.0.0.1)
//     "dropReused": HOW,        // a request that is not the first on its
//                               // socket gets no answer: as soon as its head
//                               // arrives, the socket is closed, HOW being
//                               // "destroy" (socket.destroy(): a FIN) or
//                               // "reset" (socket.resetAndDestroy(): a RST)
//     "tls": {                  // https.createServer instead of http
//       "cert": PEM_FILE, "key": PEM_FILE,
//       "ca": PEM_FILE,         // with "requestCert": true, rejectUnauthorized:
//       "requestCert": true     // a client certificate signed by it is required
//     }
//   }
//
// Routes (by the request's path; the query gives parameters):
//
//   /echo                 200, a JSON summary of the request (as reported
//                         below), with Content-Length
//   /hello                200 "hello <url>", with Content-Length
//   /slow?ms=N            as /hello, after N ms
//   /chunked?parts=N&pause=MS
//                         N writes of "part <i>\n", MS ms apart; no
//                         Content-Length, so Node sends it chunked
//   /big?bytes=N          N random bytes in 64 KiB writes (chunked); the
//                         header x-body-sha256 has their SHA-256
//   /gzip, /deflate, /deflate-raw, /br
//                         "compress me " * 1000 compressed with zlib's
//                         gzipSync / deflateSync / deflateRawSync /
//                         brotliCompressSync, with Content-Encoding gzip /
//                         deflate / deflate / br
//   /redirect?status=N&to=URL
//                         N with Location: URL (and a short body)
//   /events?upto=N&per=K  server-sent events (text/event-stream): "retry: 0",
//                         then events id 1..N, K per connection (each
//                         written on its own, CRLF line ends), starting
//                         after the request's Last-Event-ID; the connection
//                         then ends. Past N: 204 No Content.
//
// Every request's body is read before it is answered (except with
// "dropReused"). It prints one JSON object per line:
//
//   {"event": "listening", "port": N}
//   {"event": "connection", "connection": C}      each TCP connection, C from 1
//   {"event": "close", "connection": C}           when it closed (either side)
//   {"event": "request", "connection": C, "on_socket": K (1 for the socket's
//    first request), "method", "url", "headers" (lower-case names; repeated
//    fields joined), "raw_headers" (name/value pairs as sent),
//    "body_length", "body_sha256", "body_text" (UTF-8, when at most 4 KiB),
//    "in_flight" (requests being handled at once, this one included),
//    "client_cert" (https: the peer certificate's subject, or null)}
//   {"event": "dropped", "connection": C, "method", "url"}   dropReused
//   {"event": "tlsClientError", "error": "..."}   a failed TLS handshake
//   {"event": "clientError", "error": "..."}      a malformed request
//   {"event": "exit"}                             at SIGTERM, last
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const zlib = require('zlib');

const config = JSON.parse(process.argv[2] || '{}');
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

let connections = 0;
let inFlight = 0;

// The number of the TCP connection under a request's socket (for https, the
// TLSSocket wraps the net.Socket that 'connection' numbered).
const connectionOf = (socket) => (socket._parent || socket).connectionNumber;

function summary(req, body) {
  const socket = req.socket;
  const result = {
    connection: connectionOf(socket),
    on_socket: socket.requestCount,
    method: req.method,
    url: req.url,
    headers: req.headers,
    raw_headers: req.rawHeaders,
    body_length: body.length,
    body_sha256: sha256(body),
    body_text: body.length <= 4096 ? body.toString('utf8') : null,
    in_flight: inFlight,
  };
  if (config.tls) {
    const cert = socket.getPeerCertificate();
    result.client_cert = cert && cert.subject ? cert.subject : null;
  }
  return result;
}

function send(res, status, body, headers = {}) {
  const data = Buffer.from(body);
  res.writeHead(status, { 'content-length': data.length, ...headers });
  res.end(data);
}

const COMPRESSIBLE = Buffer.from('compress me '.repeat(1000));

function respond(req, res, url) {
  const query = url.searchParams;
  switch (url.pathname) {
    case '/hello':
      return send(res, 200, `hello ${req.url}`, { 'content-type': 'text/plain' });
    case '/slow':
      return setTimeout(() => send(res, 200, `hello ${req.url}`), Number(query.get('ms')));
    case '/chunked': {
      const parts = Number(query.get('parts'));
      const pause = Number(query.get('pause'));
      res.writeHead(200, { 'content-type': 'text/plain' });
      let index = 0;
      const next = () => {
        res.write(`part ${index}\n`);
        index += 1;
        if (index < parts) setTimeout(next, pause);
        else res.end();
      };
      return next();
    }
    case '/big': {
      const data = crypto.randomBytes(Number(query.get('bytes')));
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'x-body-sha256': sha256(data),
      });
      for (let start = 0; start < data.length; start += 65536) {
        res.write(data.subarray(start, start + 65536));
      }
      return res.end();
    }
    case '/gzip':
      return send(res, 200, zlib.gzipSync(COMPRESSIBLE), { 'content-encoding': 'gzip' });
    case '/deflate':
      return send(res, 200, zlib.deflateSync(COMPRESSIBLE), { 'content-encoding': 'deflate' });
    case '/deflate-raw':
      return send(res, 200, zlib.deflateRawSync(COMPRESSIBLE), { 'content-encoding': 'deflate' });
    case '/br':
      return send(res, 200, zlib.brotliCompressSync(COMPRESSIBLE), { 'content-encoding': 'br' });
    case '/redirect':
      return send(res, Number(query.get('status')), 'moved', { location: query.get('to') });
    case '/events': {
      const upto = Number(query.get('upto'));
      const after = Number(req.headers['last-event-id'] || 0);
      if (after >= upto) {
        res.writeHead(204);
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('retry: 0\r\n: from node\r\n\r\n');
      const last = Math.min(upto, after + Number(query.get('per')));
      for (let id = after + 1; id <= last; id += 1) {
        res.write(`event: tick\r\nid: ${id}\r\ndata: tick ${id}\r\ndata: é\r\n\r\n`);
      }
      return res.end();
    }
    default:
      return send(res, 404, 'no such route');
  }
}

function handler(req, res) {
  const socket = req.socket;
  socket.requestCount = (socket.requestCount || 0) + 1;
  if (config.dropReused && socket.requestCount > 1) {
    const connection = connectionOf(socket);
    report({ event: 'dropped', connection, method: req.method, url: req.url });
    if (config.dropReused === 'reset') socket.resetAndDestroy();
    else socket.destroy();
    return;
  }
  inFlight += 1;
  res.on('close', () => {
    inFlight -= 1;
  });
  const pieces = [];
  req.on('data', (chunk) => pieces.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(pieces);
    const seen = summary(req, body);
    report({ event: 'request', ...seen });
    const url = new URL(req.url, 'http://peer');
    if (url.pathname === '/echo') {
      send(res, 200, JSON.stringify(seen), { 'content-type': 'application/json' });
    } else {
      respond(req, res, url);
    }
  });
}

let server;
if (config.tls) {
  const options = {
    cert: fs.readFileSync(config.tls.cert),
    key: fs.readFileSync(config.tls.key),
  };
  if (config.tls.requestCert) {
    options.ca = fs.readFileSync(config.tls.ca);
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  server = https.createServer(options, handler);
  server.on('tlsClientError', (err) => {
    report({ event: 'tlsClientError', error: `${err.code || ''} ${err.message}` });
  });
} else {
  server = http.createServer(handler);
}
if (config.keepAliveTimeout !== undefined) server.keepAliveTimeout = config.keepAliveTimeout;
server.on('connection', (socket) => {
  connections += 1;
  socket.connectionNumber = connections;
  report({ event: 'connection', connection: connections });
  socket.on('close', () => report({ event: 'close', connection: socket.connectionNumber }));
});
server.on('clientError', (err, socket) => {
  report({ event: 'clientError', error: `${err.code || ''} ${err.message}` });
  socket.destroy();
});
process.on('SIGTERM', () => {
  report({ event: 'exit' });
  process.exit(0);
});
if (config.path) {
  server.listen(config.path, () => report({ event: 'listening', port: 0, path: config.path }));
} else {
  server.listen(0, '127.0.0.1', () => report({ event: 'listening', port: server.address().port }));
}
