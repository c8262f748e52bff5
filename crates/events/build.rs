//! Generates the protobuf types with a vendored `protoc`: no system install needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        proto_root.join("hostaway/connector/v1/inbound.proto"),
        proto_root.join("hostaway/connector/v1/events.proto"),
        proto_root.join("hostaway/connector/v1/outbound.proto"),
        proto_root.join("hostaway/connector/v1/sync.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.compile_protos(&files, &[proto_root])?;
    Ok(())
}
