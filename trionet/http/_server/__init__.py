"""The HTTP/1.1 server, private: :mod:`._protocol` (sans-IO, the only module
here that speaks h11), :mod:`._connection` (the trio driver,
``HTTPConnection``), :mod:`._request` and :mod:`._response` (what a handler
sees and returns), :mod:`._errors`, :mod:`._limits` (``HTTPLimits``) and
:mod:`._serve` (``serve`` on the shared server core). ``trionet.http``
re-exports the public names."""
