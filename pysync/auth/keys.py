"""Asymmetric signing keys, as Supabase's JWT signing keys (ES256 by default, RS256 too).

A project that moved to signing keys signs user tokens with a private key whose public half
it publishes, with its ``kid``, at ``/auth/v1/.well-known/jwks.json``; verifiers pick the key
by the token header's ``kid``. :class:`SigningKey` is one such key for the local auth, and
:func:`jwks_document` the document a set of them publishes (public parts only).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = ["Algorithm", "SigningKey", "jwks_document"]

Algorithm = Literal["ES256", "RS256"]


class SigningKey:
    """A private key with its ``kid``; signs tokens whose header names that ``kid``."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        *,
        algorithm: Algorithm,
        kid: str | None = None,
    ) -> None:
        self._private_key = private_key
        self.algorithm: Algorithm = algorithm
        self.kid = kid or str(uuid.uuid4())

    @classmethod
    def generate(cls, algorithm: Algorithm = "ES256", *, kid: str | None = None) -> SigningKey:
        """A new key: P-256 for ES256 (Supabase's default), 2048-bit RSA for RS256."""
        if algorithm == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", kid=kid)
        if algorithm == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return cls(key, algorithm="RS256", kid=kid)
        raise ValueError(f"unsupported signing algorithm {algorithm!r}: use ES256 or RS256")

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWT of ``claims`` with ``alg``, ``kid`` and ``typ`` in its header."""
        return jwt.encode(
            dict(claims),
            self._private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, as Supabase publishes it (``kid``, ``alg``, ``use``)."""
        public = self._private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig", "key_ops": ["verify"]})
        return jwk

    def __repr__(self) -> str:
        return f"SigningKey(algorithm={self.algorithm!r}, kid={self.kid!r})"


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """``{"keys": [...]}``: what ``/auth/v1/.well-known/jwks.json`` serves for ``keys``."""
    return {"keys": [key.public_jwk() for key in keys]}
