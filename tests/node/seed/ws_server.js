// A WebSocket server with the seed's /updates behaviour, on the `ws`
// package: the peer of examples/ws_client.py. Welcomes each client, pushes
// an update every 100 ms, answers every message with "echo: ...", and
// prints what it received and how the client closed.  Usage: node ws_server.js
var WebSocketServer = require('ws').WebSocketServer;
var wss = new WebSocketServer({host: '127.0.0.1', port: 0, path: '/updates'});
wss.on('listening', function () { console.log('listening ' + wss.address().port); });
wss.on('connection', function (socket) {
  socket.send('welcome from node');
  var count = 0;
  var timer = setInterval(function () { socket.send('node update ' + (++count)); }, 100);
  socket.on('message', function (data) {
    console.log('received ' + data);
    socket.send('echo: ' + data);
  });
  socket.on('close', function (code) {
    clearInterval(timer);
    console.log('client closed ' + code);
    wss.close();
  });
});
