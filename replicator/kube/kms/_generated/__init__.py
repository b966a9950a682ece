"""k8s.io/kms + kmsv2 EncryptedObject @v0.37.2; regenerate: scripts/gen_kms_stubs.py."""
