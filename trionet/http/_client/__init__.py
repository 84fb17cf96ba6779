"""The HTTP/1.1 client (:class:`trionet.http.Client`), apart from the server.

Layers, each importing only the ones below it:

* :mod:`._client` -- the public ``Client``: request building, redirects
  (:mod:`._redirects`), retries, proxies from the environment;
* :mod:`._exchange` -- one request and its response head over a connection;
  :mod:`._response` -- the response and its body's decoding;
  :mod:`._pool` -- the connections kept for reuse;
* :mod:`._connection` -- the trio driver of one connection: it moves bytes
  between its stream and the protocol and owns the timeouts; it is opened
  through the one connect path, :mod:`trionet._connect`;
* :mod:`._protocol` -- the sans-IO HTTP/1.1 client protocol, the only module
  here that imports h11 (and it imports no trio);
* :mod:`._urls`, :mod:`._body`, :mod:`._errors`, :mod:`._limits` -- values,
  no I/O.
"""
