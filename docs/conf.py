# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Sphinx configuration for the astroclusterclf documentation."""

import datetime
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

try:
    from sphinx_astropy.conf.v2 import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    print('ERROR: the documentation requires the sphinx-astropy package '
          '(pip install ".[docs]")')
    sys.exit(1)

from astroclusterclf import __version__  # noqa: E402

project = 'astroclusterclf'
author = 'astroclusterclf developers'
copyright = f'{datetime.datetime.now().year}, {author}'
version = __version__.split('+')[0]
release = __version__

extensions += ['matplotlib.sphinxext.plot_directive']  # noqa: F405
plot_include_source = True
plot_html_show_source_link = False
plot_formats = [('png', 100)]

html_title = f'{project} v{release}'
html_static_path = ['_static']
exclude_patterns += ['_build', '**.ipynb_checkpoints']  # noqa: F405
nitpicky = False
suppress_warnings = ['config.cache']

# The build machines are offline: cross-links to other projects' inventories
# are only fetched when asked for (DOCS_INTERSPHINX=1).
if os.environ.get('DOCS_INTERSPHINX') != '1':
    intersphinx_mapping = {}
    suppress_warnings += ['ref.ref']
# Inheritance diagrams need graphviz's ``dot``; our classes are shallow.
automodapi_inheritance_diagram = False
