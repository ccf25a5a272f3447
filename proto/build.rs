//! Compiles `proto/*.proto` with protox (a pure-Rust protobuf compiler) and
//! generates Rust types with prost-build, so no `protoc` binary is needed.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("proto/ directory is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    // Watch the folder too, so a newly added .proto file triggers a rebuild.
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&dir]).expect("our .proto files compile");
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config
        .compile_fds(fds)
        .expect("prost-build generates Rust from the descriptor set");
}
