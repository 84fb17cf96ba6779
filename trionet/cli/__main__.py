"""``python -m trionet.cli``: the ``trionet`` command."""

from . import console_main

console_main()
