// The seed's Node `net` server, as the book has it, on the port given:
// the peer of examples/tcp_client.py. Prints "server bound on HOST:PORT"
// (the book's line plus the address, since port 0 has the system pick the
// port), then exits after its one client is gone.
var net = require('net');
var server = net.createServer(function (socket) {
  socket.on('data', function (data) { socket.write("你好"); });
  socket.on('end', function () { console.log('连接断开'); server.close(); });
  socket.write("欢迎光临《深入浅出Node.js》示例:\n");
});
server.listen(Number(process.argv[2]), '127.0.0.1', function () {
  var address = server.address();
  console.log('server bound on ' + address.address + ':' + address.port);
});
