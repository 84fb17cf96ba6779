"""Sphinx configuration for trionet's documentation.

Build it as CI does, with warnings as errors::

    uv run sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import inspect
from typing import Any

from sphinx.application import Sphinx

import trionet

project = "trionet"
author = "trionet developers"
copyright = "trionet developers"
version = release = trionet.__version__  # from trionet/_version.py

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

root_doc = "index"
exclude_patterns = ["_build"]
language = "en"
highlight_language = "python3"
pygments_style = "sphinx"

# -- autodoc -------------------------------------------------------------------

autodoc_member_order = "bysource"
# Types go next to each argument's description instead of into long signatures.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autoclass_content = "class"

# -- napoleon: the docstrings are Google style (Args: / Returns: / Raises:) -----

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become :ivar: fields rather than attribute directives,
# so they cannot collide with members autodoc documents on its own.
napoleon_use_ivar = True

# Without intersphinx (the build must work offline) references to trio and the
# standard library cannot resolve. These patterns keep a nitpicky build
# (``sphinx-build -n``) quiet about them, so that it reports only broken
# references to trionet itself.
nitpick_ignore_regex = [
    (r"py:.*", r"(trio|ssl|os|collections\.abc|typing)\..*"),
]

# -- HTML ----------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"trionet {release}"
html_theme_options = {
    "description": "Node.js-style networking for trio",
    "fixed_sidebar": True,
}


# -- docstring fix-ups -----------------------------------------------------------


def _no_inline_property_type(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Keep napoleon from reading a property's first line as ``type: text``.

    napoleon treats the text before the first colon of a property docstring's
    first line as its type; trionet's properties take their types from their
    annotations, and a prose colon (``TCPConnection.stream``) would be cut off.
    A leading empty comment gives napoleon a first line without a colon.
    """
    if what == "property" and lines:
        lines[0:0] = ["..", ""]


def _no_docstring_from_type(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Drop the docstring a constant inherits from its type.

    ``autodata`` of a re-exported constant (``trionet.DEFAULT_CLOSE_TIMEOUT``)
    finds no comment in ``trionet/__init__.py`` and falls back to the docstring
    of ``float``; the directive's own content in ``api.rst`` describes it instead.
    """
    type_doc = type(obj).__doc__
    if what == "data" and type_doc and "\n".join(lines).strip() == inspect.cleandoc(type_doc):
        lines.clear()


def setup(app: Sphinx) -> None:
    # Before napoleon, which listens with the default priority (500).
    app.connect("autodoc-process-docstring", _no_inline_property_type, priority=400)
    app.connect("autodoc-process-docstring", _no_docstring_from_type, priority=400)
