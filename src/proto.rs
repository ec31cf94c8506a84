//! Generated protobuf types (prost), their proto3-JSON serde impls (pbjson) and
//! the descriptor set for reflection. Nothing hand-written lives here.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mcphealth.v1");
    include!(concat!(env!("OUT_DIR"), "/mcphealth.v1.serde.rs"));
}

/// The standard gRPC health protocol, vendored with `List` (gRFC A90).
#[allow(clippy::all, missing_docs)]
pub mod grpc_health_v1 {
    tonic::include_proto!("grpc.health.v1");
}

/// The etcd v3 API, client side (vendored protos, `proto/etcd/`), for `cluster::etcd`.
#[allow(clippy::all, missing_docs)]
pub mod etcd {
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
}

/// Descriptor set of every proto in `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Descriptor set of Envoy's ADS and EDS services (`proto/xds/`), served by
/// reflection when `--xds` is on.
pub const XDS_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xds_descriptor.bin"));
