"""A cluster only this server can use: Dask's TLS with throw-away credentials.

An open ``tcp://`` Dask scheduler runs whatever code any process that reaches it submits, as the user
its workers run as — on a shared host, any local user. So the embedded cluster (cluster.py) speaks TLS
with mutual authentication: a self-signed certificate and key made when it starts
(``distributed.Security.temporary``; needs the ``cryptography`` package), held by the scheduler, the
workers and this server's client and by no one else. A client without them — plain ``tcp://``, TLS
without a certificate, or TLS with a certificate of its own — is refused during the handshake.

Several processes that share one cluster (a scheduler and workers started as processes of their own,
several web-server processes) get the same throw-away credentials as files: ``write_credentials``
puts them in a private folder (0700; the key 0600); ``dask_env`` is the environment under which
``dask scheduler``, ``dask worker`` and every ``distributed.Client`` use them (Dask's own
configuration variables, so no flag is needed), ``from_folder`` the matching ``Security`` object.
A remote cluster is secured the same way with certificates of its own (README, "Securing a cluster").
"""

from __future__ import annotations

import os
from pathlib import Path

CERT_FILE = "cert.pem"     # the self-signed certificate: every role's certificate and the CA
KEY_FILE = "key.pem"       # its private key
ROLES = ("client", "scheduler", "worker")


def temporary():
    """Fresh in-memory credentials for every role of one cluster (``Security.temporary``)."""
    from distributed import Security

    try:
        return Security.temporary()
    except ImportError:
        raise RuntimeError("the embedded Dask cluster is secured with TLS, which needs the "
                           "'cryptography' package: pip install cryptography") from None


def write_credentials(folder: str | os.PathLike) -> Path:
    """Fresh throw-away credentials written to ``folder`` (created private, 0700; key 0600): for the
    scheduler, the workers and the clients of one cluster started as separate processes."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    security = temporary()
    for name, text in ((CERT_FILE, security.tls_ca_file), (KEY_FILE, security.tls_scheduler_key)):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return folder


def _paths(folder: str | os.PathLike) -> tuple[str, str]:
    folder = Path(folder)
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if not (cert.is_file() and key.is_file()):
        raise ValueError(f"no Dask TLS credentials in {folder} (expected {CERT_FILE} and {KEY_FILE})")
    return str(cert), str(key)


def from_folder(folder: str | os.PathLike):
    """The ``Security`` of the credentials in ``folder`` (every role: client, scheduler, worker)."""
    from distributed import Security

    cert, key = _paths(folder)
    return Security(require_encryption=True, tls_ca_file=cert,
                    **{f"tls_{role}_{part}": path for role in ROLES
                       for part, path in (("cert", cert), ("key", key))})


def dask_env(folder: str | os.PathLike) -> dict[str, str]:
    """Environment variables under which ``dask scheduler``/``dask worker`` processes and any
    ``distributed.Client`` use the credentials in ``folder`` and refuse unencrypted connections."""
    cert, key = _paths(folder)
    env = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
           "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert}
    for role in ROLES:
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT"] = cert
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY"] = key
    return env
