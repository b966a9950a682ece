"""kube layer: what a key is (resources), what a value holds (values), and how it is encrypted
(encryption). Pure functions over bytes; no I/O besides reading an EncryptionConfiguration file."""

from replicator.kube.encryption import EncryptionConfig, is_encrypted
from replicator.kube.resources import KeyInfo, ResourceCatalog, ResourceType, crd_resource_type
from replicator.kube.values import DecodedObject, Format, ObjectMeta, OwnerReference, decode, detect_format

__all__ = [
    "DecodedObject",
    "EncryptionConfig",
    "Format",
    "KeyInfo",
    "ObjectMeta",
    "OwnerReference",
    "ResourceCatalog",
    "ResourceType",
    "crd_resource_type",
    "decode",
    "detect_format",
    "is_encrypted",
]
