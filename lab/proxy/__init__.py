"""lab.proxy: a Toxiproxy-compatible fault proxy that runs wherever Python runs.

Standalone: nothing here imports the rest of ``lab``. Run it as ``lab-proxy``
or ``python -m lab.proxy`` with toxiproxy-server's flags, embed it with
``ProxyServer``, and drive any Toxiproxy server with ``lab.proxy.client``.
"""

from .api import VERSION
from .proxy import Context
from .server import ConfigError, ProxyServer

__all__ = ["VERSION", "ConfigError", "Context", "ProxyServer"]
