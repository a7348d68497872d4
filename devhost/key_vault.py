"""Resolve app settings written as Key Vault references, as App Service does at start-up.

Both documented forms are accepted:
`@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>[/<version>])`
and `@Microsoft.KeyVault(VaultName=<vault>;SecretName=<name>[;SecretVersion=<version>])`.
Secrets are read with azure-keyvault-secrets and `DefaultAzureCredential` (az login,
environment variables, managed identity...).
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from urllib.parse import urlparse

from devhost.host_config import StartupError

_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class SecretReference:
    vault_url: str
    name: str
    version: str | None


def parse_reference(setting: str, value: str) -> SecretReference | None:
    """The reference in `value`, None when it is an ordinary value; StartupError if malformed."""
    match = _REFERENCE.match(value.strip())
    if not match:
        return None
    parts = dict(
        part.split("=", 1) for part in match.group("body").split(";") if "=" in part
    )
    parts = {key.strip().lower(): item.strip() for key, item in parts.items()}
    if "secreturi" in parts:
        uri = urlparse(parts["secreturi"])
        path = [segment for segment in uri.path.split("/") if segment]
        if not uri.scheme or not uri.netloc or len(path) not in (2, 3) or path[0] != "secrets":
            raise StartupError(
                f"app setting {setting!r}: SecretUri {parts['secreturi']!r} is not of the form "
                "https://<vault>.vault.azure.net/secrets/<name>[/<version>]"
            )
        return SecretReference(
            vault_url=f"{uri.scheme}://{uri.netloc}",
            name=path[1],
            version=path[2] if len(path) == 3 else None,
        )
    if "vaultname" in parts and "secretname" in parts:
        return SecretReference(
            vault_url=f"https://{parts['vaultname']}.vault.azure.net",
            name=parts["secretname"],
            version=parts.get("secretversion") or None,
        )
    raise StartupError(
        f"app setting {setting!r}: a Key Vault reference needs SecretUri=... or "
        "VaultName=...;SecretName=..."
    )


def resolve_key_vault_references(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Replace every Key Vault reference in `environ` by its secret; return the names.

    All settings are tried; StartupError lists every one that failed with its reason.
    """
    environ = os.environ if environ is None else environ
    references = {
        name: reference
        for name, value in environ.items()
        if (reference := parse_reference(name, value)) is not None
    }
    if not references:
        return []
    # Imported here so apps without references do not pay for the Azure identity stack.
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    credential = DefaultAzureCredential()
    failures = []
    for name, reference in references.items():
        try:
            client = SecretClient(vault_url=reference.vault_url, credential=credential)
            secret = client.get_secret(reference.name, reference.version)
        except Exception as error:  # any failure is reported with the setting's name
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            failures.append(f"app setting {name!r}: Key Vault reference not resolved: {reason}")
            continue
        if secret.value is None:
            failures.append(f"app setting {name!r}: secret {reference.name!r} has no value")
            continue
        environ[name] = secret.value
    if failures:
        raise StartupError("\n".join(failures))
    return sorted(references)
