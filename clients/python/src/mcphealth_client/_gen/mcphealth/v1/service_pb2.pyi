import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mcphealth_client._gen.mcphealth.v1 import spec_pb2 as _spec_pb2
from mcphealth_client._gen.mcphealth.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_KIND_UNSPECIFIED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_OK: _ClassVar[OutcomeKind]
    OUTCOME_KIND_CONNECT_FAILURE: _ClassVar[OutcomeKind]
    OUTCOME_KIND_RESET: _ClassVar[OutcomeKind]
    OUTCOME_KIND_TIMEOUT: _ClassVar[OutcomeKind]
    OUTCOME_KIND_HTTP_STATUS: _ClassVar[OutcomeKind]
    OUTCOME_KIND_JSON_RPC_ERROR: _ClassVar[OutcomeKind]
    OUTCOME_KIND_TOOL_ERROR: _ClassVar[OutcomeKind]

class WatchEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_EVENT_KIND_UNSPECIFIED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_SNAPSHOT: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_CHANGED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_DELETED: _ClassVar[WatchEventKind]
OUTCOME_KIND_UNSPECIFIED: OutcomeKind
OUTCOME_KIND_OK: OutcomeKind
OUTCOME_KIND_CONNECT_FAILURE: OutcomeKind
OUTCOME_KIND_RESET: OutcomeKind
OUTCOME_KIND_TIMEOUT: OutcomeKind
OUTCOME_KIND_HTTP_STATUS: OutcomeKind
OUTCOME_KIND_JSON_RPC_ERROR: OutcomeKind
OUTCOME_KIND_TOOL_ERROR: OutcomeKind
WATCH_EVENT_KIND_UNSPECIFIED: WatchEventKind
WATCH_EVENT_KIND_SNAPSHOT: WatchEventKind
WATCH_EVENT_KIND_CHANGED: WatchEventKind
WATCH_EVENT_KIND_DELETED: WatchEventKind

class OutcomeReport(_message.Message):
    __slots__ = ("group", "backend", "outcome", "http_status", "json_rpc_code", "method", "latency")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    JSON_RPC_CODE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    outcome: OutcomeKind
    http_status: int
    json_rpc_code: int
    method: str
    latency: _duration_pb2.Duration
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ..., outcome: _Optional[_Union[OutcomeKind, str]] = ..., http_status: _Optional[int] = ..., json_rpc_code: _Optional[int] = ..., method: _Optional[str] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReportOutcomesResponse(_message.Message):
    __slots__ = ("accepted", "unknown_backend", "invalid", "ejected", "not_owned", "forwarded", "dropped")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_BACKEND_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FIELD_NUMBER: _ClassVar[int]
    NOT_OWNED_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    unknown_backend: int
    invalid: int
    ejected: _containers.RepeatedScalarFieldContainer[str]
    not_owned: int
    forwarded: int
    dropped: int
    def __init__(self, accepted: _Optional[int] = ..., unknown_backend: _Optional[int] = ..., invalid: _Optional[int] = ..., ejected: _Optional[_Iterable[str]] = ..., not_owned: _Optional[int] = ..., forwarded: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class ListGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GroupOverview(_message.Message):
    __slots__ = ("name", "phase", "summary", "message", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    phase: _status_pb2.GroupPhase
    summary: _status_pb2.Summary
    message: str
    source: _status_pb2.GroupSource
    def __init__(self, name: _Optional[str] = ..., phase: _Optional[_Union[_status_pb2.GroupPhase, str]] = ..., summary: _Optional[_Union[_status_pb2.Summary, _Mapping]] = ..., message: _Optional[str] = ..., source: _Optional[_Union[_status_pb2.GroupSource, str]] = ...) -> None: ...

class ListGroupsResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupOverview]
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupOverview, _Mapping]]] = ...) -> None: ...

class GetGroupHealthRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class GetGroupHealthResponse(_message.Message):
    __slots__ = ("health",)
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    health: _status_pb2.GroupHealth
    def __init__(self, health: _Optional[_Union[_status_pb2.GroupHealth, _Mapping]] = ...) -> None: ...

class WatchGroupHealthRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class WatchGroupHealthResponse(_message.Message):
    __slots__ = ("kind", "revision", "groups")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    kind: WatchEventKind
    revision: int
    groups: _containers.RepeatedCompositeFieldContainer[_status_pb2.GroupHealth]
    def __init__(self, kind: _Optional[_Union[WatchEventKind, str]] = ..., revision: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[_status_pb2.GroupHealth, _Mapping]]] = ...) -> None: ...

class ApplyGroupRequest(_message.Message):
    __slots__ = ("spec", "validate_only")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.GroupSpec
    validate_only: bool
    def __init__(self, spec: _Optional[_Union[_spec_pb2.GroupSpec, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class ApplyGroupResponse(_message.Message):
    __slots__ = ("spec", "generation", "changed")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.GroupSpec
    generation: int
    changed: bool
    def __init__(self, spec: _Optional[_Union[_spec_pb2.GroupSpec, _Mapping]] = ..., generation: _Optional[int] = ..., changed: _Optional[bool] = ...) -> None: ...

class DeleteGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class DeleteGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProbeBackendRequest(_message.Message):
    __slots__ = ("group", "backend")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class ProbeBackendResponse(_message.Message):
    __slots__ = ("backend", "phase")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    backend: _status_pb2.BackendHealth
    phase: _status_pb2.GroupPhase
    def __init__(self, backend: _Optional[_Union[_status_pb2.BackendHealth, _Mapping]] = ..., phase: _Optional[_Union[_status_pb2.GroupPhase, str]] = ...) -> None: ...

class SetBackendDrainRequest(_message.Message):
    __slots__ = ("group", "backend", "drain", "endpoint")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    drain: bool
    endpoint: str
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ..., drain: _Optional[bool] = ..., endpoint: _Optional[str] = ...) -> None: ...

class SetBackendDrainResponse(_message.Message):
    __slots__ = ("spec", "generation", "changed")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.GroupSpec
    generation: int
    changed: bool
    def __init__(self, spec: _Optional[_Union[_spec_pb2.GroupSpec, _Mapping]] = ..., generation: _Optional[int] = ..., changed: _Optional[bool] = ...) -> None: ...

class AcceptCatalogRequest(_message.Message):
    __slots__ = ("group", "backend", "fingerprint")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    fingerprint: str
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class AcceptCatalogResponse(_message.Message):
    __slots__ = ("spec", "generation", "changed", "fingerprint")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.GroupSpec
    generation: int
    changed: bool
    fingerprint: str
    def __init__(self, spec: _Optional[_Union[_spec_pb2.GroupSpec, _Mapping]] = ..., generation: _Optional[int] = ..., changed: _Optional[bool] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class GetConfigStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetConfigStatusResponse(_message.Message):
    __slots__ = ("path", "last_good_load_time", "last_error", "last_error_time", "groups", "cluster", "self_doubt")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LAST_GOOD_LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_TIME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SELF_DOUBT_FIELD_NUMBER: _ClassVar[int]
    path: str
    last_good_load_time: _timestamp_pb2.Timestamp
    last_error: str
    last_error_time: _timestamp_pb2.Timestamp
    groups: _containers.RepeatedScalarFieldContainer[str]
    cluster: ClusterInfo
    self_doubt: SelfDoubt
    def __init__(self, path: _Optional[str] = ..., last_good_load_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., last_error_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., groups: _Optional[_Iterable[str]] = ..., cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ..., self_doubt: _Optional[_Union[SelfDoubt, _Mapping]] = ...) -> None: ...

class SelfDoubt(_message.Message):
    __slots__ = ("causes", "since", "holds_until", "holding")
    CAUSES_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    HOLDS_UNTIL_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    causes: _containers.RepeatedScalarFieldContainer[str]
    since: _timestamp_pb2.Timestamp
    holds_until: _timestamp_pb2.Timestamp
    holding: bool
    def __init__(self, causes: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holds_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holding: _Optional[bool] = ...) -> None: ...

class ClusterMember(_message.Message):
    __slots__ = ("id", "name", "doubting")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOUBTING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    doubting: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., doubting: _Optional[bool] = ...) -> None: ...

class ClusterInfo(_message.Message):
    __slots__ = ("member", "members", "degraded", "degraded_reason", "lease_ttl_seconds")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    member: str
    members: _containers.RepeatedCompositeFieldContainer[ClusterMember]
    degraded: bool
    degraded_reason: str
    lease_ttl_seconds: int
    def __init__(self, member: _Optional[str] = ..., members: _Optional[_Iterable[_Union[ClusterMember, _Mapping]]] = ..., degraded: _Optional[bool] = ..., degraded_reason: _Optional[str] = ..., lease_ttl_seconds: _Optional[int] = ...) -> None: ...

class GetBackendHistoryRequest(_message.Message):
    __slots__ = ("group", "backend")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class BackendTransition(_message.Message):
    __slots__ = ("from_status", "to_status", "reason", "time", "latency", "endpoint")
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    from_status: _status_pb2.BackendStatus
    to_status: _status_pb2.BackendStatus
    reason: _status_pb2.Reason
    time: _timestamp_pb2.Timestamp
    latency: _duration_pb2.Duration
    endpoint: str
    def __init__(self, from_status: _Optional[_Union[_status_pb2.BackendStatus, str]] = ..., to_status: _Optional[_Union[_status_pb2.BackendStatus, str]] = ..., reason: _Optional[_Union[_status_pb2.Reason, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., endpoint: _Optional[str] = ...) -> None: ...

class LatencyBucket(_message.Message):
    __slots__ = ("start", "probes", "mean", "max")
    START_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    probes: int
    mean: _duration_pb2.Duration
    max: _duration_pb2.Duration
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., probes: _Optional[int] = ..., mean: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetBackendHistoryResponse(_message.Message):
    __slots__ = ("group", "backend", "since", "transitions", "dropped_transitions", "latency", "status", "catalog_changes", "ejections", "held_probes")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_CHANGES_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_FIELD_NUMBER: _ClassVar[int]
    HELD_PROBES_FIELD_NUMBER: _ClassVar[int]
    group: str
    backend: str
    since: _timestamp_pb2.Timestamp
    transitions: _containers.RepeatedCompositeFieldContainer[BackendTransition]
    dropped_transitions: int
    latency: _containers.RepeatedCompositeFieldContainer[LatencyBucket]
    status: _status_pb2.BackendStatus
    catalog_changes: _containers.RepeatedCompositeFieldContainer[CatalogChange]
    ejections: _containers.RepeatedCompositeFieldContainer[EjectionEvent]
    held_probes: int
    def __init__(self, group: _Optional[str] = ..., backend: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transitions: _Optional[_Iterable[_Union[BackendTransition, _Mapping]]] = ..., dropped_transitions: _Optional[int] = ..., latency: _Optional[_Iterable[_Union[LatencyBucket, _Mapping]]] = ..., status: _Optional[_Union[_status_pb2.BackendStatus, str]] = ..., catalog_changes: _Optional[_Iterable[_Union[CatalogChange, _Mapping]]] = ..., ejections: _Optional[_Iterable[_Union[EjectionEvent, _Mapping]]] = ..., held_probes: _Optional[int] = ...) -> None: ...

class EjectionEvent(_message.Message):
    __slots__ = ("time", "ejected", "cause", "until", "count")
    TIME_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    ejected: bool
    cause: str
    until: _timestamp_pb2.Timestamp
    count: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ejected: _Optional[bool] = ..., cause: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class CatalogChange(_message.Message):
    __slots__ = ("time", "from_fingerprint", "to_fingerprint", "added", "removed", "changed")
    TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TO_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    from_fingerprint: str
    to_fingerprint: str
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_fingerprint: _Optional[str] = ..., to_fingerprint: _Optional[str] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ...) -> None: ...
