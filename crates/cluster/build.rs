//! Generates the etcd v3 API client (vendored protos in `proto/etcd/`) with
//! protox: no system `protoc`.

const PROTO_ROOT: &str = "../../proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}/etcd");
    let etcd = protox::compile(["etcd/api/etcdserverpb/rpc.proto"], [PROTO_ROOT])?;
    tonic_prost_build::configure().build_server(false).compile_fds(etcd)?;
    Ok(())
}
