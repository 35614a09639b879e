"""Bearer tokens and TLS's PEM files, checked where they are set, not where gRPC uses them.

The service, the gateway, the client and `mlops` share these rules. gRPC's C core takes
any bytes as a certificate or key and says nothing until it uses them: then it only logs
"Invalid private key" or "Could not load any root certificate", and the process reported a
port in use (the service), a service it could not reach (the gateway, on every request) or
nothing of the file at all. Each error here names the setting.
"""

from __future__ import annotations

import ssl
from pathlib import Path

CERTIFICATE_MARK = b"-----BEGIN CERTIFICATE-----"
KEY_MARK = b"PRIVATE KEY-----"


def bearer_token(token: str, setting: str) -> str:
    """The token as sent, without the blanks around it; refused if a gRPC header cannot carry it.

    A token read from a file (a Kubernetes Secret, `echo tok > file`) ends in a newline,
    which gRPC refused as "Invalid metadata" before any call was made. The token is never
    repeated in the error: it is a secret.
    """
    token = token.strip()
    if not all("!" <= character <= "~" for character in token):
        raise ValueError(
            f"{setting} holds a space, a control character or a letter outside ASCII; a bearer"
            " token is printable ASCII only"
        )
    return token


def token_to_send(token: str, setting: str) -> str:
    """A token a client sends, as bearer_token; one given with its scheme loses the word.

    Copied whole from a header or a doc ("Bearer abc"), it was sent as "Bearer Bearer abc".
    A service's own tokens (MLOPS_AUTH_TOKENS) keep the strict rule: a space there is refused.
    """
    scheme, _, rest = token.strip().partition(" ")
    return bearer_token(rest if scheme.lower() == "bearer" and rest.strip() else token, setting)


def _read(path: Path | str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{setting} {path}: {error.strerror}") from None


def certificates(path: Path | str, setting: str) -> bytes:
    """Read a PEM file of certificates (a CA bundle or a certificate chain)."""
    text = _read(path, setting)
    if CERTIFICATE_MARK not in text:
        raise ValueError(f"{setting} {path} holds no PEM certificate ({CERTIFICATE_MARK.decode()})")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text.decode("latin-1"))
    except ssl.SSLError:
        raise ValueError(f"{setting} {path}: a certificate in it is damaged") from None
    return text


def key_pair(cert: Path, key: Path, cert_setting: str, key_setting: str) -> None:
    """Check a certificate chain and its private key; refuse a key of another certificate."""
    certificates(cert, cert_setting)
    secret = _read(key, key_setting)
    if KEY_MARK not in secret:
        raise ValueError(
            f"{key_setting} {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
        )
    if b"ENCRYPTED" in secret:
        raise ValueError(f"{key_setting} {key} is encrypted; gRPC reads only unencrypted keys")
    try:
        # An empty password: an encrypted key OpenSSL did not recognise must not prompt.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password="")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(
                f"{key_setting} {key} is not the private key of the certificate in "
                f"{cert_setting} {cert}"
            ) from None
        raise ValueError(f"{key_setting} {key}: the private key in it is damaged") from None
