import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Transport(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSPORT_UNSPECIFIED: _ClassVar[Transport]
    TRANSPORT_STREAMABLE_HTTP: _ClassVar[Transport]
    TRANSPORT_SSE: _ClassVar[Transport]

class AuthMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTH_MODE_UNSPECIFIED: _ClassVar[AuthMode]
    AUTH_MODE_NONE: _ClassVar[AuthMode]
    AUTH_MODE_PER_USER: _ClassVar[AuthMode]
    AUTH_MODE_STATIC_HEADER: _ClassVar[AuthMode]
    AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS: _ClassVar[AuthMode]

class ProbeDepth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_DEPTH_UNSPECIFIED: _ClassVar[ProbeDepth]
    PROBE_DEPTH_HANDSHAKE: _ClassVar[ProbeDepth]
    PROBE_DEPTH_TOOLS: _ClassVar[ProbeDepth]

class CatalogOnChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATALOG_ON_CHANGE_UNSPECIFIED: _ClassVar[CatalogOnChange]
    CATALOG_ON_CHANGE_ALERT: _ClassVar[CatalogOnChange]
    CATALOG_ON_CHANGE_BLOCK: _ClassVar[CatalogOnChange]
TRANSPORT_UNSPECIFIED: Transport
TRANSPORT_STREAMABLE_HTTP: Transport
TRANSPORT_SSE: Transport
AUTH_MODE_UNSPECIFIED: AuthMode
AUTH_MODE_NONE: AuthMode
AUTH_MODE_PER_USER: AuthMode
AUTH_MODE_STATIC_HEADER: AuthMode
AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS: AuthMode
PROBE_DEPTH_UNSPECIFIED: ProbeDepth
PROBE_DEPTH_HANDSHAKE: ProbeDepth
PROBE_DEPTH_TOOLS: ProbeDepth
CATALOG_ON_CHANGE_UNSPECIFIED: CatalogOnChange
CATALOG_ON_CHANGE_ALERT: CatalogOnChange
CATALOG_ON_CHANGE_BLOCK: CatalogOnChange

class SecretSource(_message.Message):
    __slots__ = ("env", "file")
    ENV_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    env: str
    file: str
    def __init__(self, env: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class StaticHeaderAuth(_message.Message):
    __slots__ = ("header", "value", "value_prefix")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    header: str
    value: SecretSource
    value_prefix: str
    def __init__(self, header: _Optional[str] = ..., value: _Optional[_Union[SecretSource, _Mapping]] = ..., value_prefix: _Optional[str] = ...) -> None: ...

class OAuth2ClientCredentials(_message.Message):
    __slots__ = ("token_url", "client_id", "client_secret", "scopes", "audience", "private_key_jwt")
    TOKEN_URL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_JWT_FIELD_NUMBER: _ClassVar[int]
    token_url: str
    client_id: SecretSource
    client_secret: SecretSource
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    private_key_jwt: PrivateKeyJwt
    def __init__(self, token_url: _Optional[str] = ..., client_id: _Optional[_Union[SecretSource, _Mapping]] = ..., client_secret: _Optional[_Union[SecretSource, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., private_key_jwt: _Optional[_Union[PrivateKeyJwt, _Mapping]] = ...) -> None: ...

class PrivateKeyJwt(_message.Message):
    __slots__ = ("private_key", "algorithm")
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    private_key: SecretSource
    algorithm: str
    def __init__(self, private_key: _Optional[_Union[SecretSource, _Mapping]] = ..., algorithm: _Optional[str] = ...) -> None: ...

class AuthSpec(_message.Message):
    __slots__ = ("mode", "static_header", "oauth2_client_credentials")
    MODE_FIELD_NUMBER: _ClassVar[int]
    STATIC_HEADER_FIELD_NUMBER: _ClassVar[int]
    OAUTH2_CLIENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    mode: AuthMode
    static_header: StaticHeaderAuth
    oauth2_client_credentials: OAuth2ClientCredentials
    def __init__(self, mode: _Optional[_Union[AuthMode, str]] = ..., static_header: _Optional[_Union[StaticHeaderAuth, _Mapping]] = ..., oauth2_client_credentials: _Optional[_Union[OAuth2ClientCredentials, _Mapping]] = ...) -> None: ...

class TlsSpec(_message.Message):
    __slots__ = ("ca_file", "client_cert_file", "client_key_file", "dangerous_skip_verification", "resumption")
    CA_FILE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERT_FILE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    DANGEROUS_SKIP_VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    RESUMPTION_FIELD_NUMBER: _ClassVar[int]
    ca_file: str
    client_cert_file: str
    client_key_file: str
    dangerous_skip_verification: bool
    resumption: bool
    def __init__(self, ca_file: _Optional[str] = ..., client_cert_file: _Optional[str] = ..., client_key_file: _Optional[str] = ..., dangerous_skip_verification: _Optional[bool] = ..., resumption: _Optional[bool] = ...) -> None: ...

class ProbePolicy(_message.Message):
    __slots__ = ("interval", "timeout", "unhealthy_threshold", "healthy_threshold", "degraded_latency", "jitter_percent", "initial_spread", "rate_limit_hold", "edge_interval", "catalog_interval", "outlier")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_LATENCY_FIELD_NUMBER: _ClassVar[int]
    JITTER_PERCENT_FIELD_NUMBER: _ClassVar[int]
    INITIAL_SPREAD_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_HOLD_FIELD_NUMBER: _ClassVar[int]
    EDGE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CATALOG_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FIELD_NUMBER: _ClassVar[int]
    interval: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    unhealthy_threshold: int
    healthy_threshold: int
    degraded_latency: _duration_pb2.Duration
    jitter_percent: int
    initial_spread: _duration_pb2.Duration
    rate_limit_hold: _duration_pb2.Duration
    edge_interval: _duration_pb2.Duration
    catalog_interval: _duration_pb2.Duration
    outlier: OutlierPolicy
    def __init__(self, interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., unhealthy_threshold: _Optional[int] = ..., healthy_threshold: _Optional[int] = ..., degraded_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., jitter_percent: _Optional[int] = ..., initial_spread: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rate_limit_hold: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., edge_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., catalog_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., outlier: _Optional[_Union[OutlierPolicy, _Mapping]] = ...) -> None: ...

class OutlierPolicy(_message.Message):
    __slots__ = ("consecutive_failures", "base_ejection_time", "max_ejection_time", "max_ejected_percent")
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    BASE_EJECTION_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_EJECTION_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_EJECTED_PERCENT_FIELD_NUMBER: _ClassVar[int]
    consecutive_failures: int
    base_ejection_time: _duration_pb2.Duration
    max_ejection_time: _duration_pb2.Duration
    max_ejected_percent: int
    def __init__(self, consecutive_failures: _Optional[int] = ..., base_ejection_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ejection_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ejected_percent: _Optional[int] = ...) -> None: ...

class CatalogPolicy(_message.Message):
    __slots__ = ("on_change", "accepted")
    ON_CHANGE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    on_change: CatalogOnChange
    accepted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, on_change: _Optional[_Union[CatalogOnChange, str]] = ..., accepted: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckExpectation(_message.Message):
    __slots__ = ("is_error", "text_contains", "json_path")
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    TEXT_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    JSON_PATH_FIELD_NUMBER: _ClassVar[int]
    is_error: bool
    text_contains: str
    json_path: str
    def __init__(self, is_error: _Optional[bool] = ..., text_contains: _Optional[str] = ..., json_path: _Optional[str] = ...) -> None: ...

class ToolCheck(_message.Message):
    __slots__ = ("name", "tool", "arguments", "expect", "interval", "timeout", "allow_side_effects")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SIDE_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tool: str
    arguments: _struct_pb2.Struct
    expect: CheckExpectation
    interval: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    allow_side_effects: bool
    def __init__(self, name: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expect: _Optional[_Union[CheckExpectation, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., allow_side_effects: _Optional[bool] = ...) -> None: ...

class BackendSpec(_message.Message):
    __slots__ = ("name", "url", "transport", "auth", "tls", "policy", "depth", "protocol_version", "drain", "required_tools", "catalog", "checks", "discovery", "drained_endpoints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_TOOLS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    DISCOVERY_FIELD_NUMBER: _ClassVar[int]
    DRAINED_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    transport: Transport
    auth: AuthSpec
    tls: TlsSpec
    policy: ProbePolicy
    depth: ProbeDepth
    protocol_version: str
    drain: bool
    required_tools: _containers.RepeatedScalarFieldContainer[str]
    catalog: CatalogPolicy
    checks: _containers.RepeatedCompositeFieldContainer[ToolCheck]
    discovery: DiscoverySpec
    drained_endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., transport: _Optional[_Union[Transport, str]] = ..., auth: _Optional[_Union[AuthSpec, _Mapping]] = ..., tls: _Optional[_Union[TlsSpec, _Mapping]] = ..., policy: _Optional[_Union[ProbePolicy, _Mapping]] = ..., depth: _Optional[_Union[ProbeDepth, str]] = ..., protocol_version: _Optional[str] = ..., drain: _Optional[bool] = ..., required_tools: _Optional[_Iterable[str]] = ..., catalog: _Optional[_Union[CatalogPolicy, _Mapping]] = ..., checks: _Optional[_Iterable[_Union[ToolCheck, _Mapping]]] = ..., discovery: _Optional[_Union[DiscoverySpec, _Mapping]] = ..., drained_endpoints: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscoverySpec(_message.Message):
    __slots__ = ("dns",)
    DNS_FIELD_NUMBER: _ClassVar[int]
    dns: DnsDiscovery
    def __init__(self, dns: _Optional[_Union[DnsDiscovery, _Mapping]] = ...) -> None: ...

class DnsDiscovery(_message.Message):
    __slots__ = ("srv", "min_ttl", "max_ttl", "removal_grace", "min_healthy_percent")
    SRV_FIELD_NUMBER: _ClassVar[int]
    MIN_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_FIELD_NUMBER: _ClassVar[int]
    REMOVAL_GRACE_FIELD_NUMBER: _ClassVar[int]
    MIN_HEALTHY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    srv: str
    min_ttl: _duration_pb2.Duration
    max_ttl: _duration_pb2.Duration
    removal_grace: _duration_pb2.Duration
    min_healthy_percent: int
    def __init__(self, srv: _Optional[str] = ..., min_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., removal_grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_healthy_percent: _Optional[int] = ...) -> None: ...

class GroupSpec(_message.Message):
    __slots__ = ("name", "backends", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    backends: _containers.RepeatedCompositeFieldContainer[BackendSpec]
    policy: ProbePolicy
    def __init__(self, name: _Optional[str] = ..., backends: _Optional[_Iterable[_Union[BackendSpec, _Mapping]]] = ..., policy: _Optional[_Union[ProbePolicy, _Mapping]] = ...) -> None: ...

class HealthConfig(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupSpec]
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupSpec, _Mapping]]] = ...) -> None: ...
