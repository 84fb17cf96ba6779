// A Node `net` client, the peer of trionet servers in the interop tests.
//
//   node client.js PORT welcome
//     Wait for the first line (the welcome), write "hello\r\n", wait for 你好,
//     then end() (half-close). At 'end' print {"text": everything received}.
//   node client.js PORT echo FILE
//     Write FILE's bytes, then end(). At 'end' print the sha256 and length of
//     what was sent and of what came back.
//
// Any socket error prints to stderr and makes the exit status 1.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');

const [port, mode, file] = process.argv.slice(2);
const report = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const sha256 = (buffer) => crypto.createHash('sha256').update(buffer).digest('hex');

const socket = net.connect({ port: Number(port), host: '127.0.0.1' });
socket.on('error', (err) => {
  console.error(`client.js: socket error: ${err.code || ''} ${err.message}`);
  process.exitCode = 1;
});

if (mode === 'welcome') {
  socket.setEncoding('utf8'); // a character cut between two reads is kept whole
  let text = '';
  let state = 'waiting for the welcome';
  socket.on('data', (chunk) => {
    text += chunk;
    if (state === 'waiting for the welcome' && text.includes('\n')) {
      state = 'waiting for 你好';
      socket.write('hello\r\n');
    } else if (state === 'waiting for 你好' && text.includes('你好')) {
      state = 'ended';
      socket.end();
    }
  });
  socket.on('end', () => report({ text, state }));
} else if (mode === 'echo') {
  const payload = fs.readFileSync(file);
  const chunks = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('end', () => {
    const received = Buffer.concat(chunks);
    report({
      sent_sha256: sha256(payload),
      sent_length: payload.length,
      received_sha256: sha256(received),
      received_length: received.length,
    });
  });
  socket.write(payload);
  socket.end();
} else {
  console.error(`client.js: unknown mode ${mode}`);
  process.exit(2);
}
