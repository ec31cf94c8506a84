//! Compiles `proto/` with protox (pure Rust: no system `protoc`), generates the
//! tonic/prost code, the proto3-JSON serde impls (pbjson) and the descriptor set
//! served by reflection.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "proto/mcphealth/v1/spec.proto",
    "proto/mcphealth/v1/status.proto",
    "proto/mcphealth/v1/service.proto",
    "proto/grpc/health/v1/health.proto",
    // Only for reflection: lets grpcurl decode google.rpc.BadRequest details.
    "proto/google/rpc/error_details.proto",
];

const XDS_PROTOS: &[&str] = &["envoy/service/discovery/v3/ads.proto", "envoy/service/endpoint/v3/eds.proto"];

const ETCD_PROTOS: &[&str] = &["proto/etcd/api/etcdserverpb/rpc.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;
    let descriptor_bytes = fds.encode_to_vec();
    std::fs::write(out_dir.join("descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        // tonic-prost's codec with a 1 KiB initial encode buffer (src/api/codec.rs).
        .codec_path("crate::api::codec::SmallBufferCodec")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .btree_map(".")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .btree_map(["."])
        .build(&[".mcphealth.v1"])?;

    // Envoy's ADS and EDS services, for reflection only (`--xds`); the code
    // comes from the envoy-types crate (see proto/xds/README.md).
    let xds = protox::compile(XDS_PROTOS, ["proto/xds"])?;
    std::fs::write(out_dir.join("xds_descriptor.bin"), xds.encode_to_vec())?;

    // The etcd v3 API (vendored protos, client side only) for src/cluster/etcd.
    let etcd = protox::compile(ETCD_PROTOS, ["proto"])?;
    tonic_prost_build::configure().build_server(false).compile_fds(etcd)?;
    Ok(())
}
