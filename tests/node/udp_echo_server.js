// A Node `dgram` echo server, the peer of `trionet udp` in the CLI tests.
//
//   node udp_echo_server.js COUNT
//
// It prints {"port": N} once bound to 127.0.0.1, sends every datagram back
// to its sender as it is, and after COUNT datagrams prints {"received":
// [each datagram as UTF-8, in order of arrival]} and exits 0.
'use strict';
const dgram = require('dgram');

const count = Number(process.argv[2]);
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const socket = dgram.createSocket('udp4');
const received = [];

socket.on('error', (err) => {
  console.error(`udp_echo_server.js: ${err.message}`);
  process.exit(1);
});
socket.on('message', (msg, rinfo) => {
  received.push(msg.toString('utf8'));
  socket.send(msg, rinfo.port, rinfo.address, (err) => {
    if (err) {
      console.error(`udp_echo_server.js: send: ${err.message}`);
      process.exitCode = 1;
    }
    if (received.length === count) {
      report({ received });
      socket.close();
    }
  });
});
socket.bind(0, '127.0.0.1', () => report({ port: socket.address().port }));
