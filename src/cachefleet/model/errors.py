"""The error hierarchy of cachefleet, each class carrying its AWS wire code and HTTP status.

Handlers raise these; the API edge maps them to an ``ErrorResponse`` once, by walking the MRO, so a
subclass inherits its parent's wire mapping unless it names its own. Constructors only store fields.

    CacheFleetError                       (Receiver, 500: InternalFailure)
    +-- ClientError                       (Sender, 400)
        +-- InvalidParameterValue
        +-- InvalidParameterCombination
        +-- MissingParameter, InvalidAction, MalformedQueryString, MethodNotAllowed, PathNotFound
        +-- NotFound                      (404 unless the model says otherwise)
        |   +-- ReplicationGroupNotFound, CacheClusterNotFound, ..., HostNotFound (the admin API's)
        +-- AlreadyExists
        +-- InvalidState
        +-- QuotaExceeded
        +-- InvalidARN
        +-- AuthFailure                   (signature and credential problems)
        +-- AccessDenied, Throttling, RequestEntityTooLarge
        +-- IAM's own: NoSuchEntity, EntityAlreadyExists, MalformedPolicyDocument, LimitExceeded, ...

Reconcile steps use a second, separate family: ``Retry`` (try again later) and ``Fatal`` (give up and
record why).
"""

from __future__ import annotations


class CacheFleetError(Exception):
    code = "InternalFailure"
    http_status = 500
    sender_fault = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(CacheFleetError):
    code = "InvalidRequest"
    http_status = 400
    sender_fault = True


class InvalidParameterValue(ClientError):
    code = "InvalidParameterValue"


class InvalidParameterCombination(ClientError):
    code = "InvalidParameterCombination"


class MissingParameter(ClientError):
    code = "MissingParameter"


class InvalidAction(ClientError):
    code = "InvalidAction"


class MalformedQueryString(ClientError):
    code = "MalformedQueryString"
    http_status = 404


class PathNotFound(ClientError):
    """A path other than the API's own (``/``) and the server's named routes."""

    code = "NotFound"
    http_status = 404


class MethodNotAllowed(ClientError):
    """An HTTP method other than POST or GET on the API's path."""

    code = "MethodNotAllowed"
    http_status = 405


class InvalidARN(ClientError):
    code = "InvalidARN"


# Missing resources


class NotFound(ClientError):
    http_status = 404


class ReplicationGroupNotFound(NotFound):
    code = "ReplicationGroupNotFoundFault"


class CacheClusterNotFound(NotFound):
    code = "CacheClusterNotFound"


class CacheParameterGroupNotFound(NotFound):
    code = "CacheParameterGroupNotFound"


class CacheSubnetGroupNotFound(NotFound):
    code = "CacheSubnetGroupNotFoundFault"
    http_status = 400  # the model says 400 for this one, not 404


class HostNotFound(NotFound):
    """A host id the admin API does not know (not an ElastiCache fault: hosts are ours)."""

    code = "HostNotFound"


class InvalidSubnet(ClientError):
    code = "InvalidSubnet"


class SubnetInUse(ClientError):
    code = "SubnetInUse"


class CacheSubnetGroupInUse(ClientError):
    code = "CacheSubnetGroupInUse"


class CacheSecurityGroupNotFound(NotFound):
    code = "CacheSecurityGroupNotFound"


class SnapshotNotFound(NotFound):
    code = "SnapshotNotFoundFault"


class UserGroupNotFound(NotFound):
    code = "UserGroupNotFound"


class UserNotFound(NotFound):
    code = "UserNotFound"


class NodeGroupNotFound(NotFound):
    code = "NodeGroupNotFoundFault"


# Duplicates


class AlreadyExists(ClientError):
    pass


class ReplicationGroupAlreadyExists(AlreadyExists):
    code = "ReplicationGroupAlreadyExists"


class CacheClusterAlreadyExists(AlreadyExists):
    code = "CacheClusterAlreadyExists"


class CacheParameterGroupAlreadyExists(AlreadyExists):
    code = "CacheParameterGroupAlreadyExists"


class SnapshotAlreadyExists(AlreadyExists):
    code = "SnapshotAlreadyExistsFault"


class UserAlreadyExists(AlreadyExists):
    code = "UserAlreadyExists"


class UserGroupAlreadyExists(AlreadyExists):
    code = "UserGroupAlreadyExists"


class DuplicateUserName(ClientError):
    """Two users of one user group (or a new user and an existing one) share a ``UserName``."""

    code = "DuplicateUserName"


class DefaultUserRequired(ClientError):
    code = "DefaultUserRequired"


class DefaultUserAssociatedToUserGroup(ClientError):
    code = "DefaultUserAssociatedToUserGroup"
class CacheSubnetGroupAlreadyExists(AlreadyExists):
    code = "CacheSubnetGroupAlreadyExists"


class HostAlreadyExists(AlreadyExists):
    code = "HostAlreadyExists"


# Wrong state


class InvalidState(ClientError):
    pass


class InvalidReplicationGroupState(InvalidState):
    code = "InvalidReplicationGroupState"


class InvalidCacheClusterState(InvalidState):
    code = "InvalidCacheClusterState"


class InvalidCacheParameterGroupState(InvalidState):
    code = "InvalidCacheParameterGroupState"


class InvalidSnapshotState(InvalidState):
    code = "InvalidSnapshotState"


class InvalidUserState(InvalidState):
    code = "InvalidUserState"


class InvalidUserGroupState(InvalidState):
    code = "InvalidUserGroupState"
class InvalidHostState(InvalidState):
    code = "InvalidHostState"


class SnapshotFeatureNotSupported(ClientError):
    code = "SnapshotFeatureNotSupportedFault"


class NoOperation(ClientError):
    code = "NoOperationFault"


class TestFailoverNotAvailable(ClientError):
    code = "TestFailoverNotAvailableFault"


# Quotas


class QuotaExceeded(ClientError):
    pass


class TagQuotaPerResourceExceeded(QuotaExceeded):
    code = "TagQuotaPerResourceExceeded"


class CacheParameterGroupQuotaExceeded(QuotaExceeded):
    code = "CacheParameterGroupQuotaExceeded"


class CacheSubnetGroupQuotaExceeded(QuotaExceeded):
    code = "CacheSubnetGroupQuotaExceeded"


class CacheSubnetQuotaExceeded(QuotaExceeded):
    code = "CacheSubnetQuotaExceededFault"


class SnapshotQuotaExceeded(QuotaExceeded):
    code = "SnapshotQuotaExceededFault"


class NodeQuotaForClusterExceeded(QuotaExceeded):
    code = "NodeQuotaForClusterExceeded"


class ClusterQuotaForCustomerExceeded(QuotaExceeded):
    code = "ClusterQuotaForCustomerExceeded"


class UserQuotaExceeded(QuotaExceeded):
    code = "UserQuotaExceeded"


class UserGroupQuotaExceeded(QuotaExceeded):
    code = "UserGroupQuotaExceeded"


class APICallRateForCustomerExceeded(QuotaExceeded):
    code = "APICallRateForCustomerExceeded"


class InsufficientCacheClusterCapacity(QuotaExceeded):
    """No free port or resource left on the host to place a node."""

    code = "InsufficientCacheClusterCapacity"


# Authentication (SigV4). Codes and statuses as every AWS Query service answers them.


class AuthFailure(ClientError):
    http_status = 403


class MissingAuthenticationToken(AuthFailure):
    code = "MissingAuthenticationToken"


class IncompleteSignature(AuthFailure):
    code = "IncompleteSignature"
    http_status = 400


class InvalidClientTokenId(AuthFailure):
    code = "InvalidClientTokenId"


class SignatureDoesNotMatch(AuthFailure):
    code = "SignatureDoesNotMatch"


class RequestExpired(AuthFailure):
    code = "RequestExpired"
    http_status = 400


# Authorization and abuse limits: every service on the endpoint answers these the same way.


class AccessDenied(ClientError):
    """A policy does not allow the call (or explicitly denies it); nothing was changed."""

    code = "AccessDenied"
    http_status = 403


class Throttling(ClientError):
    """Too many calls for one access key; botocore retries this code with backoff."""

    code = "Throttling"


class RequestEntityTooLarge(ClientError):
    code = "RequestEntityTooLarge"
    http_status = 413


class InvalidKMSKey(ClientError):
    code = "InvalidKMSKeyFault"


# IAM's codes and statuses, as its service model gives them.


class ValidationError(ClientError):
    """A parameter breaks a constraint of the service model (length, pattern, enum)."""

    code = "ValidationError"


class InvalidInput(ClientError):
    code = "InvalidInput"


class NoSuchEntity(NotFound):
    code = "NoSuchEntity"


class EntityAlreadyExists(AlreadyExists):
    code = "EntityAlreadyExists"
    http_status = 409


class MalformedPolicyDocument(ClientError):
    code = "MalformedPolicyDocument"


class LimitExceeded(QuotaExceeded):
    code = "LimitExceeded"
    http_status = 409


class DeleteConflict(InvalidState):
    code = "DeleteConflict"
    http_status = 409


class PolicyNotAttachable(ClientError):
    code = "PolicyNotAttachable"


# Control flow of reconcile steps (never sent on the wire).


class Retry(Exception):
    """A step could not finish yet; the resource is queued again after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class Fatal(Exception):
    """A step can never succeed as specified; the resource's status records ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestoreFailed(Fatal):
    """A new node cannot be seeded: its snapshot or RDB file is missing, corrupted or unreadable.

    ``cluster_id`` is the cache cluster whose node was to be seeded.
    """

    def __init__(self, cluster_id: str, reason: str) -> None:
        super().__init__(reason)
        self.cluster_id = cluster_id
