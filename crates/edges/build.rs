//! Generates the tonic services of `proto/` (servers and clients) over the
//! messages of `mcp-health-proto` (extern paths: no message is generated
//! twice), with protox: no system `protoc`.

const PROTO_ROOT: &str = "../../proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}/mcphealth");
    println!("cargo:rerun-if-changed={PROTO_ROOT}/grpc");
    let fds = protox::compile(["mcphealth/v1/service.proto", "grpc/health/v1/health.proto"], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        // tonic-prost's codec with a 1 KiB initial encode buffer (src/api/codec.rs).
        .codec_path("crate::api::codec::SmallBufferCodec")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .extern_path(".mcphealth.v1", "::mcp_health_proto::v1")
        .extern_path(".grpc.health.v1", "::mcp_health_proto::grpc_health_v1")
        .compile_fds(fds)?;
    Ok(())
}
