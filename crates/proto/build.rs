//! Compiles `proto/` with protox (pure Rust: no system `protoc`) into prost
//! messages (no services: `mcp-health-edges` generates those over these
//! types), their proto3-JSON serde impls (pbjson) and the descriptor sets
//! served by reflection.

use std::{env, path::PathBuf};

use prost::Message as _;

const PROTO_ROOT: &str = "../../proto";

const PROTOS: &[&str] = &[
    "mcphealth/v1/spec.proto",
    "mcphealth/v1/status.proto",
    "mcphealth/v1/service.proto",
    "grpc/health/v1/health.proto",
    // Only for reflection: lets grpcurl decode google.rpc.BadRequest details.
    "google/rpc/error_details.proto",
];

const XDS_PROTOS: &[&str] = &["envoy/service/discovery/v3/ads.proto", "envoy/service/endpoint/v3/eds.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, [PROTO_ROOT])?;
    let descriptor_bytes = fds.encode_to_vec();
    std::fs::write(out_dir.join("descriptor.bin"), &descriptor_bytes)?;

    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .btree_map(["."])
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .btree_map(["."])
        .build(&[".mcphealth.v1"])?;

    // Envoy's ADS and EDS services, for reflection only (`--xds`); the code
    // comes from the envoy-types crate (see proto/xds/README.md).
    let xds = protox::compile(XDS_PROTOS, [format!("{PROTO_ROOT}/xds")])?;
    std::fs::write(out_dir.join("xds_descriptor.bin"), xds.encode_to_vec())?;
    Ok(())
}
