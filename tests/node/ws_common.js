// What tests/node/ws_client.js and ws_server.js share: how a message is
// reported, and how a planned message is sent.
'use strict';
const crypto = require('crypto');

// {"type": "text"|"binary", "length": bytes, "sha256": hex}, plus "text"
// for a text message of at most 100 bytes.
function summary(data, isBinary) {
  const result = {
    type: isBinary ? 'binary' : 'text',
    length: data.length,
    sha256: crypto.createHash('sha256').update(data).digest('hex'),
  };
  if (!isBinary && data.length <= 100) result.text = data.toString('utf8');
  return result;
}

// A plan's message: {"text": str} or {"base64": str} (binary).
function send(ws, message) {
  if ('text' in message) ws.send(message.text);
  else ws.send(Buffer.from(message.base64, 'base64'), { binary: true });
}

module.exports = { summary, send };
