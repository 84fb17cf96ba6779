// A Node `net` echo server, the peer of `trionet tcp` in the CLI tests. It
// serves one connection, then exits: 0 if no socket error happened.
//
//   node tcp_echo_server.js
//
// It prints {"port": N} once listening. It echoes every chunk as it arrives;
// at 'end' (the client half-closed: allowHalfOpen keeps our side open) it
// writes "bye after N bytes\n" and ends its side too. At 'close' it prints
// {"received": everything received (UTF-8), "ended": whether 'end' came}.
'use strict';
const net = require('net');

const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  server.close(); // one connection only: exit once it is over
  const chunks = [];
  let ended = false;
  socket.on('error', (err) => {
    console.error(`tcp_echo_server.js: socket error: ${err.code || ''} ${err.message}`);
    process.exitCode = 1;
  });
  socket.on('data', (chunk) => {
    chunks.push(chunk);
    socket.write(chunk);
  });
  socket.on('end', () => {
    ended = true;
    socket.end(`bye after ${Buffer.concat(chunks).length} bytes\n`);
  });
  socket.on('close', () => report({ received: Buffer.concat(chunks).toString('utf8'), ended }));
});
server.listen(0, '127.0.0.1', () => report({ port: server.address().port }));
