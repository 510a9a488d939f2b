"""Create an ed25519 key pair: keep whsk_… private, give Inlet whpk_… (docs/partners.md "ed25519
(v1a) sources")."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

private_key = Ed25519PrivateKey.generate()
raw = serialization.Encoding.Raw
private = private_key.private_bytes(
    raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
)
public = private_key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
print("whsk_" + base64.b64encode(private).decode())  # your signing key: keep it secret
print("whpk_" + base64.b64encode(public).decode())  # for Inlet: {"publicKey": "whpk_…"}
