// The seed's Node `http.request` client: the peer of examples/http_hello.py.
// Usage: node http_client.js PORT [CAFILE]  (with CAFILE: https, trusting it)
var port = Number(process.argv[2]);
var ca = process.argv[3];
var mod = ca ? require('https') : require('http');
var options = {hostname: ca ? 'localhost' : '127.0.0.1', port: port, path: '/'};
if (ca) options.ca = require('fs').readFileSync(ca);
var req = mod.request(options, function (res) {
  console.log('STATUS: ' + res.statusCode);
  console.log('HEADERS: ' + JSON.stringify(res.headers));
  res.setEncoding('utf8');
  res.on('data', function (chunk) { process.stdout.write('BODY: ' + chunk); });
});
req.on('error', function (e) { console.error('problem with request: ' + e.message); process.exit(1); });
req.end();
