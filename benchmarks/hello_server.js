// The seed's Node "Hello World" server, used as the common target of
// benchmarks/http_client.py:  node benchmarks/hello_server.js PORT [HOST]
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 12010);
const host = process.argv[3] || '127.0.0.1';

const BODY = Buffer.from('Hello World\n');

const server = http.createServer((req, res) => {
  // An explicit Content-Length (writeHead alone would make Node chunk the
  // body): the same framing as examples/http_hello.py, kept alive.
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(BODY);
});
// Keep idle connections for a whole round even if the client pauses.
server.keepAliveTimeout = 60000;
server.listen(port, host, () => {
  console.log(`Server running at http://${host}:${port}/`);
});
