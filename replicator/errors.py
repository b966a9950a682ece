"""The project's own error types, shared by every layer.

Every error a user can see derives from ``ReplicatorError`` and carries one line that names the
thing at fault (file, key, flag, endpoint). Adapters translate outside errors into these; nothing
above an adapter catches a library's exception type.

Messages never contain decrypted Secret content: name keys and providers, never values.
"""

from __future__ import annotations


class ReplicatorError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ReplicatorError):
    """A flag, config file or environment value is wrong. Raised before anything is written."""


class RulesError(ConfigError):
    """A rule file is missing or invalid; the message names file, line and field."""


class EncryptionConfigError(ConfigError):
    """An EncryptionConfiguration file is missing or invalid."""


class BadValue(ReplicatorError):
    """Base for problems with one stored value; the sync journals it, counts it and goes on."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class DecodeError(BadValue):
    """A stored value could not be decoded (bad envelope, bad JSON, unknown format)."""


class DecryptError(BadValue):
    """A stored value could not be decrypted (unknown key name, wrong key, bad padding)."""


class JournalError(ReplicatorError):
    """The journal database is unreachable or its schema is not the one this version needs."""


class JournalUnavailable(JournalError):
    """The journal's database cannot be reached right now (connection refused or lost); retryable."""


class JournalSchemaError(JournalError):
    """The journal's schema is older or newer than this version; run `replicator journal upgrade`."""


class MirrorStopped(ReplicatorError):
    """The mirror stopped on purpose (another writer, a different source cluster, ...)."""


class KmsUnavailable(ReplicatorError):
    """A KMS plugin (encryption at rest) cannot be reached or timed out; retryable. Values that need
    it wait (they are not bad values); the message names the provider and endpoint."""
