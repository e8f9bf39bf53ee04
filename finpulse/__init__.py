"""finpulse: the command line (``finpulse.cli``) and packaged resources (``finpulse.resources``).

The product code lives in ``models``, ``training`` and ``stream_app``; this package is the
entry point on top and the data locator at the bottom. The version comes from the
installed distribution's metadata, so it is defined once, in pyproject.toml.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finpulse")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
