// A Node `net` server, the peer of trionet clients in the interop tests. It
// serves one connection, then exits: 0 if all went as planned.
//
// It prints {"port": N} once listening, then one JSON line per report:
//
//   node server.js halfclose
//     Write "hello from node\n"; on receiving "ping\n", write "pong\n" and
//     end() (half-close first, allowHalfOpen keeps reading). At 'end' print
//     {"received": everything received}.
//   node server.js bulk FILE
//     Write FILE's bytes and end(). At 'end' print {"received": ...}.
//   node server.js reset
//     On the first data, resetAndDestroy() (a TCP RST). Print {"reset": true}.
//     Prints {"skip": reason} instead of the port on a Node without it.
'use strict';
const fs = require('fs');
const net = require('net');

const [mode, file] = process.argv.slice(2);
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');

if (mode === 'reset' && typeof net.Socket.prototype.resetAndDestroy !== 'function') {
  report({ skip: `Node ${process.version} has no socket.resetAndDestroy() (needs >= 16.17)` });
  process.exit(0);
}

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  server.close(); // one connection only: exit once it is over
  socket.on('error', (err) => {
    console.error(`server.js: socket error: ${err.code || ''} ${err.message}`);
    process.exitCode = 1;
  });
  if (mode !== 'bulk') socket.setEncoding('utf8');
  let received = '';
  if (mode === 'halfclose') {
    socket.write('hello from node\n');
    socket.on('data', (chunk) => {
      received += chunk;
      if (received === 'ping\n') {
        socket.write('pong\n');
        socket.end();
      }
    });
    socket.on('end', () => report({ received }));
  } else if (mode === 'bulk') {
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
    });
    socket.on('end', () => report({ received }));
    socket.write(fs.readFileSync(file));
    socket.end();
  } else if (mode === 'reset') {
    socket.once('data', () => {
      socket.resetAndDestroy();
      report({ reset: true });
    });
  }
});

if (!['halfclose', 'bulk', 'reset'].includes(mode)) {
  console.error(`server.js: unknown mode ${mode}`);
  process.exit(2);
}
server.listen(0, '127.0.0.1', () => report({ port: server.address().port }));
