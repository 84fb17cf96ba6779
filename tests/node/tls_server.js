// A Node `tls` server, the peer of trionet's TLS client in the interop tests.
//
//   node tls_server.js CERT_FILE KEY_FILE
//     Listen on 127.0.0.1 (a free port) and print {"port": N}. Serve one
//     connection: answer the first data with its upper-case form, then end()
//     (close_notify); at 'close' print {"received": everything received} and
//     exit.
'use strict';
const fs = require('fs');
const tls = require('tls');

const [certFile, keyFile] = process.argv.slice(2);
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const server = tls.createServer(
  { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) },
  (socket) => {
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      received += chunk;
      socket.end(chunk.toUpperCase());
    });
    socket.on('error', (err) => {
      console.error(`tls_server.js: ${err.code || ''} ${err.message}`);
      process.exitCode = 1;
    });
    socket.on('close', () => {
      report({ received });
      server.close();
    });
  },
);
server.listen(0, '127.0.0.1', () => report({ port: server.address().port }));
