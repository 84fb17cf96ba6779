// The seed's Node `http` server on the port given: the peer of
// examples/http_get.py. Runs until killed. The book prints its line right
// after listen(); here it is printed once listening, with the port bound,
// since port 0 has the system pick it.
var http = require('http');
var server = http.createServer(function (req, res) {
  res.writeHead(200, {'Content-Type': 'text/plain'});
  res.end('Hello World\n');
});
server.listen(Number(process.argv[2]), '127.0.0.1', function () {
  console.log('Server running at http://127.0.0.1:' + server.address().port + '/');
});
