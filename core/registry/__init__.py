"""Talking to registries: the Distribution API client, credentials and tokens, pull and push."""

from .auth import Credentials, CredentialStore, default_credential_store
from .client import ALL_MANIFEST_TYPES, RegistryClient
from .pull import PulledImage, pull_image, select_platform
from .push import push_image

__all__ = [
    "ALL_MANIFEST_TYPES", "Credentials", "CredentialStore", "PulledImage", "RegistryClient",
    "default_credential_store", "pull_image", "push_image", "select_platform",
]
