"""KMS encryption at rest: a gRPC client for KMS v1/v2 plugins (``client``) and kube-apiserver's
envelope layouts (``envelope``). The only part of ``kube/`` that imports grpc."""

from replicator.kube.kms.client import EncryptResult, KmsClient, KmsRejected, KmsStatus
from replicator.kube.kms.envelope import EnvelopeError, KmsEnvelope

__all__ = ["EncryptResult", "EnvelopeError", "KmsClient", "KmsEnvelope", "KmsRejected", "KmsStatus"]
