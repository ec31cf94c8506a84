import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mcphealth_client._gen.mcphealth.v1 import spec_pb2 as _spec_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackendStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_STATUS_UNSPECIFIED: _ClassVar[BackendStatus]
    BACKEND_STATUS_UNKNOWN: _ClassVar[BackendStatus]
    BACKEND_STATUS_HEALTHY: _ClassVar[BackendStatus]
    BACKEND_STATUS_DEGRADED: _ClassVar[BackendStatus]
    BACKEND_STATUS_UNHEALTHY: _ClassVar[BackendStatus]
    BACKEND_STATUS_UNAUTHENTICATED: _ClassVar[BackendStatus]

class GroupPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_PHASE_UNSPECIFIED: _ClassVar[GroupPhase]
    GROUP_PHASE_PENDING: _ClassVar[GroupPhase]
    GROUP_PHASE_READY: _ClassVar[GroupPhase]
    GROUP_PHASE_DEGRADED: _ClassVar[GroupPhase]
    GROUP_PHASE_FAILED: _ClassVar[GroupPhase]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_CODE_UNSPECIFIED: _ClassVar[ReasonCode]
    REASON_CODE_NOT_PROBED: _ClassVar[ReasonCode]
    REASON_CODE_OK: _ClassVar[ReasonCode]
    REASON_CODE_SLOW: _ClassVar[ReasonCode]
    REASON_CODE_TIMEOUT: _ClassVar[ReasonCode]
    REASON_CODE_CONNECTION_REFUSED: _ClassVar[ReasonCode]
    REASON_CODE_DNS: _ClassVar[ReasonCode]
    REASON_CODE_TLS: _ClassVar[ReasonCode]
    REASON_CODE_HTTP_STATUS: _ClassVar[ReasonCode]
    REASON_CODE_REDIRECT: _ClassVar[ReasonCode]
    REASON_CODE_PROTOCOL: _ClassVar[ReasonCode]
    REASON_CODE_JSON_RPC_ERROR: _ClassVar[ReasonCode]
    REASON_CODE_RESPONSE_TOO_LARGE: _ClassVar[ReasonCode]
    REASON_CODE_AUTH_REQUIRED: _ClassVar[ReasonCode]
    REASON_CODE_CREDENTIALS_REJECTED: _ClassVar[ReasonCode]
    REASON_CODE_CONNECTION: _ClassVar[ReasonCode]
    REASON_CODE_CREDENTIALS_UNAVAILABLE: _ClassVar[ReasonCode]
    REASON_CODE_NO_TOOLS: _ClassVar[ReasonCode]
    REASON_CODE_RATE_LIMITED: _ClassVar[ReasonCode]
    REASON_CODE_REQUIRED_TOOL_MISSING: _ClassVar[ReasonCode]
    REASON_CODE_CATALOG_CHANGED: _ClassVar[ReasonCode]
    REASON_CODE_CHECK_FAILED: _ClassVar[ReasonCode]

class ResourceMetadataState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_METADATA_STATE_UNSPECIFIED: _ClassVar[ResourceMetadataState]
    RESOURCE_METADATA_STATE_NOT_ADVERTISED: _ClassVar[ResourceMetadataState]
    RESOURCE_METADATA_STATE_VALID: _ClassVar[ResourceMetadataState]
    RESOURCE_METADATA_STATE_INVALID: _ClassVar[ResourceMetadataState]

class GroupSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_SOURCE_UNSPECIFIED: _ClassVar[GroupSource]
    GROUP_SOURCE_CONFIG_FILE: _ClassVar[GroupSource]
    GROUP_SOURCE_API: _ClassVar[GroupSource]
BACKEND_STATUS_UNSPECIFIED: BackendStatus
BACKEND_STATUS_UNKNOWN: BackendStatus
BACKEND_STATUS_HEALTHY: BackendStatus
BACKEND_STATUS_DEGRADED: BackendStatus
BACKEND_STATUS_UNHEALTHY: BackendStatus
BACKEND_STATUS_UNAUTHENTICATED: BackendStatus
GROUP_PHASE_UNSPECIFIED: GroupPhase
GROUP_PHASE_PENDING: GroupPhase
GROUP_PHASE_READY: GroupPhase
GROUP_PHASE_DEGRADED: GroupPhase
GROUP_PHASE_FAILED: GroupPhase
REASON_CODE_UNSPECIFIED: ReasonCode
REASON_CODE_NOT_PROBED: ReasonCode
REASON_CODE_OK: ReasonCode
REASON_CODE_SLOW: ReasonCode
REASON_CODE_TIMEOUT: ReasonCode
REASON_CODE_CONNECTION_REFUSED: ReasonCode
REASON_CODE_DNS: ReasonCode
REASON_CODE_TLS: ReasonCode
REASON_CODE_HTTP_STATUS: ReasonCode
REASON_CODE_REDIRECT: ReasonCode
REASON_CODE_PROTOCOL: ReasonCode
REASON_CODE_JSON_RPC_ERROR: ReasonCode
REASON_CODE_RESPONSE_TOO_LARGE: ReasonCode
REASON_CODE_AUTH_REQUIRED: ReasonCode
REASON_CODE_CREDENTIALS_REJECTED: ReasonCode
REASON_CODE_CONNECTION: ReasonCode
REASON_CODE_CREDENTIALS_UNAVAILABLE: ReasonCode
REASON_CODE_NO_TOOLS: ReasonCode
REASON_CODE_RATE_LIMITED: ReasonCode
REASON_CODE_REQUIRED_TOOL_MISSING: ReasonCode
REASON_CODE_CATALOG_CHANGED: ReasonCode
REASON_CODE_CHECK_FAILED: ReasonCode
RESOURCE_METADATA_STATE_UNSPECIFIED: ResourceMetadataState
RESOURCE_METADATA_STATE_NOT_ADVERTISED: ResourceMetadataState
RESOURCE_METADATA_STATE_VALID: ResourceMetadataState
RESOURCE_METADATA_STATE_INVALID: ResourceMetadataState
GROUP_SOURCE_UNSPECIFIED: GroupSource
GROUP_SOURCE_CONFIG_FILE: GroupSource
GROUP_SOURCE_API: GroupSource

class Reason(_message.Message):
    __slots__ = ("code", "http_status", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ReasonCode
    http_status: int
    message: str
    def __init__(self, code: _Optional[_Union[ReasonCode, str]] = ..., http_status: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class BackendHealth(_message.Message):
    __slots__ = ("name", "url", "transport", "auth_mode", "status", "routable", "reason", "message", "consecutive_failures", "consecutive_successes", "last_latency", "last_probe_time", "last_transition_time", "protocol_version", "server_name", "server_version", "tool_count", "resource_metadata", "draining", "address", "catalog_fingerprint", "catalog_changed_time", "catalog_note", "ejection", "endpoints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    AUTH_MODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOOL_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_METADATA_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CATALOG_CHANGED_TIME_FIELD_NUMBER: _ClassVar[int]
    CATALOG_NOTE_FIELD_NUMBER: _ClassVar[int]
    EJECTION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    transport: _spec_pb2.Transport
    auth_mode: _spec_pb2.AuthMode
    status: BackendStatus
    routable: bool
    reason: Reason
    message: str
    consecutive_failures: int
    consecutive_successes: int
    last_latency: _duration_pb2.Duration
    last_probe_time: _timestamp_pb2.Timestamp
    last_transition_time: _timestamp_pb2.Timestamp
    protocol_version: str
    server_name: str
    server_version: str
    tool_count: int
    resource_metadata: ResourceMetadataState
    draining: bool
    address: str
    catalog_fingerprint: str
    catalog_changed_time: _timestamp_pb2.Timestamp
    catalog_note: str
    ejection: Ejection
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointHealth]
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., transport: _Optional[_Union[_spec_pb2.Transport, str]] = ..., auth_mode: _Optional[_Union[_spec_pb2.AuthMode, str]] = ..., status: _Optional[_Union[BackendStatus, str]] = ..., routable: _Optional[bool] = ..., reason: _Optional[_Union[Reason, _Mapping]] = ..., message: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., consecutive_successes: _Optional[int] = ..., last_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_probe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., protocol_version: _Optional[str] = ..., server_name: _Optional[str] = ..., server_version: _Optional[str] = ..., tool_count: _Optional[int] = ..., resource_metadata: _Optional[_Union[ResourceMetadataState, str]] = ..., draining: _Optional[bool] = ..., address: _Optional[str] = ..., catalog_fingerprint: _Optional[str] = ..., catalog_changed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., catalog_note: _Optional[str] = ..., ejection: _Optional[_Union[Ejection, _Mapping]] = ..., endpoints: _Optional[_Iterable[_Union[EndpointHealth, _Mapping]]] = ...) -> None: ...

class Ejection(_message.Message):
    __slots__ = ("cause", "since", "until", "count")
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    cause: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    count: int
    def __init__(self, cause: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class EndpointHealth(_message.Message):
    __slots__ = ("address", "status", "routable", "reason", "message", "leaving", "refused", "priority", "weight", "last_latency", "last_probe_time", "last_transition_time", "protocol_version", "server_version", "drained")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    address: str
    status: BackendStatus
    routable: bool
    reason: Reason
    message: str
    leaving: bool
    refused: str
    priority: int
    weight: int
    last_latency: _duration_pb2.Duration
    last_probe_time: _timestamp_pb2.Timestamp
    last_transition_time: _timestamp_pb2.Timestamp
    protocol_version: str
    server_version: str
    drained: bool
    def __init__(self, address: _Optional[str] = ..., status: _Optional[_Union[BackendStatus, str]] = ..., routable: _Optional[bool] = ..., reason: _Optional[_Union[Reason, _Mapping]] = ..., message: _Optional[str] = ..., leaving: _Optional[bool] = ..., refused: _Optional[str] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ..., last_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_probe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., protocol_version: _Optional[str] = ..., server_version: _Optional[str] = ..., drained: _Optional[bool] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("total", "routable", "unknown", "healthy", "degraded", "unhealthy", "unauthenticated", "draining", "ejected")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROUTABLE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    UNAUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FIELD_NUMBER: _ClassVar[int]
    total: int
    routable: int
    unknown: int
    healthy: int
    degraded: int
    unhealthy: int
    unauthenticated: int
    draining: int
    ejected: int
    def __init__(self, total: _Optional[int] = ..., routable: _Optional[int] = ..., unknown: _Optional[int] = ..., healthy: _Optional[int] = ..., degraded: _Optional[int] = ..., unhealthy: _Optional[int] = ..., unauthenticated: _Optional[int] = ..., draining: _Optional[int] = ..., ejected: _Optional[int] = ...) -> None: ...

class GroupHealth(_message.Message):
    __slots__ = ("name", "phase", "summary", "message", "backends", "revision", "generation", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    phase: GroupPhase
    summary: Summary
    message: str
    backends: _containers.RepeatedCompositeFieldContainer[BackendHealth]
    revision: int
    generation: int
    source: GroupSource
    def __init__(self, name: _Optional[str] = ..., phase: _Optional[_Union[GroupPhase, str]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., message: _Optional[str] = ..., backends: _Optional[_Iterable[_Union[BackendHealth, _Mapping]]] = ..., revision: _Optional[int] = ..., generation: _Optional[int] = ..., source: _Optional[_Union[GroupSource, str]] = ...) -> None: ...
