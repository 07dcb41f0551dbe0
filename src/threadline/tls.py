"""The TLS settings every HTTP client of this process shares.

httpx builds a fresh context for each client it creates, which loads the CA bundle (about
20 ms each time). A serving process opens four clients before it is ready (the control plane,
token checks, bundle shipping and the command's own), so sharing one context shortens every
start; it is the context httpx itself would build (certifi's CAs, ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` honoured), and a context is safe to share between threads once built.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
