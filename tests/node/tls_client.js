// A Node `tls` client, the peer of trionet's TLS server in the interop tests.
//
//   node tls_client.js PORT CA_FILE
//     Connect to 127.0.0.1:PORT verifying the certificate for "localhost"
//     against CA_FILE, write "ping", end() (close_notify) after the first
//     answer, and at 'close' print {"text": what was received, "protocol":
//     the TLS version, "authorized": whether the certificate verified}.
//
// Any socket error prints to stderr and makes the exit status 1.
'use strict';
const fs = require('fs');
const tls = require('tls');

const [port, caFile] = process.argv.slice(2);
const socket = tls.connect({
  port: Number(port),
  host: '127.0.0.1',
  servername: 'localhost',
  ca: fs.readFileSync(caFile),
});
let text = '';
let protocol = null;
socket.setEncoding('utf8');
socket.on('secureConnect', () => {
  protocol = socket.getProtocol();
  socket.write('ping');
});
socket.on('data', (chunk) => {
  text += chunk;
  socket.end();
});
socket.on('error', (err) => {
  console.error(`tls_client.js: ${err.code || ''} ${err.message}`);
  process.exitCode = 1;
});
socket.on('close', () => {
  process.stdout.write(
    JSON.stringify({ text, protocol, authorized: socket.authorized }) + '\n',
  );
});
