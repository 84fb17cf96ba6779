// The seed's Node `http` server on the port given: the peer of
// examples/http_get.py. Runs until killed.
var http = require('http');
http.createServer(function (req, res) {
  res.writeHead(200, {'Content-Type': 'text/plain'});
  res.end('Hello World\n');
}).listen(Number(process.argv[2]), '127.0.0.1');
console.log('Server running at http://127.0.0.1:' + process.argv[2] + '/');
