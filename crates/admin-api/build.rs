//! Generates the operations API's server and client with a vendored `protoc`,
//! and the descriptor set server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("hostaway/connector/v1/admin.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // SAFETY-free: build scripts run single-threaded; prost-build reads PROTOC.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("admin_descriptor.bin"))
        .compile_with_config(config, &[file], &[proto_root])?;
    Ok(())
}
