// The seed's WebSocket client (the browser's `new WebSocket(url)`, here the
// `ws` package's): the peer of examples/ws_server.py. Sends an update every
// 50 ms while nothing is buffered, prints each message, and closes (1000)
// after COUNT messages.  Usage: node ws_client.js URL COUNT
var WebSocket = require('ws');
var socket = new WebSocket(process.argv[2]);
var count = Number(process.argv[3]);
var sent = 0;
function getUpdateData() { sent += 1; return 'update from node ' + sent; }
socket.onopen = function () {
  setInterval(function () {
    if (socket.bufferedAmount == 0 && socket.readyState == WebSocket.OPEN) socket.send(getUpdateData());
  }, 50).unref();
};
socket.onmessage = function (event) {
  console.log(event.data);
  if (--count === 0) socket.close(1000, 'enough');
};
socket.onclose = function (event) { console.log('closed ' + event.code); };
socket.onerror = function (event) { console.error('error: ' + event.message); process.exit(1); };
