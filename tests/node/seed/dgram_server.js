// The seed's Node `dgram` server on the port given: the peer of
// examples/udp_client.py. Exits after its first message.
var dgram = require("dgram");
var server = dgram.createSocket("udp4");
server.on("message", function (msg, rinfo) {
  console.log("server got: " + msg + " from " + rinfo.address + ":" + rinfo.port);
  server.close();
});
server.on("listening", function () {
  var address = server.address();
  console.log("server listening " + address.address + ":" + address.port);
});
server.bind(Number(process.argv[2]), '127.0.0.1');
