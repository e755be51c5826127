"""Errors of bucket operations, each a ServerError subclass with a stable code so the
rpc layer maps it to a gRPC status (and clients back to their own errors)."""

from __future__ import annotations

from comet.server.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
)


class BucketAuthError(AuthenticationError):
    """Unknown bucket, wrong key, or a bucket whose account is gone; the message never
    says which, so a caller learns nothing about other buckets."""

    code = "bucket.unauthenticated"


class ObjectNotFoundError(NotFoundError):
    code = "bucket.object_not_found"


class InvalidKeyError(InvalidRequestError):
    code = "bucket.invalid_key"


class RangeError(InvalidRequestError):
    """A ranged read reaching past the end of the object."""

    code = "bucket.range"


class SizeMismatchError(InvalidRequestError):
    """A put whose data did not add up to the size it announced."""

    code = "bucket.size_mismatch"


class KeyConflictError(InvalidRequestError):
    """A key whose parent is an object, or an object where a key's prefix is a folder."""

    code = "bucket.key_conflict"


# RESOURCE_EXHAUSTED is the status for "out of quota"; it shares it with throttling.
class QuotaExceededError(ThrottledError):
    code = "bucket.quota_exceeded"


class BucketStorageError(ServerError):
    """The server's disk failed (full, unreadable); an operator has to look."""

    code = "bucket.storage"


class BucketLimitError(ThrottledError):
    """The account already has as many buckets as its policy allows."""

    code = "bucket.limit"


class ImmutableObjectError(PermissionDeniedError):
    """An immutable bucket's object cannot be overwritten, or deleted without a grant."""

    code = "bucket.immutable"


class ObjectProtectedError(PermissionDeniedError):
    """The object is younger than the bucket's protection period: nobody may delete it."""

    code = "bucket.protected"


class DeleteGrantError(PermissionDeniedError):
    """A delete grant that is missing, expired, forged, or for another bucket."""

    code = "bucket.delete_grant"


class ObjectStoreUnavailableError(BucketStorageError):
    """The object store holding the buckets did not answer (or answered 5xx); the
    call may be retried, through this instance or another."""

    code = "bucket.store_unavailable"
