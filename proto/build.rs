//! Compiles NSM's five `.proto` files at build time with `protox`, a pure-Rust protobuf
//! compiler, so no system `protoc` is needed, then generates prost messages and tonic
//! clients for every package (`$OUT_DIR/<package>.rs`), and tonic servers that decode
//! requests with nsm-proto's own codec (`$OUT_DIR/server/<package>.rs`).
//!
//! It also writes the encoded `FileDescriptorSet` (our five files plus the google
//! well-known types they import, with source info so comments survive) to
//! `$OUT_DIR/nsm_descriptor.bin`; `lib.rs` exposes it as `FILE_DESCRIPTOR_SET` for gRPC
//! reflection and for the wire-compatibility test.

use std::{env, error::Error, fs, path::PathBuf};

/// One include path per NSM folder: NSM's imports are flat (`import "connection.proto"`),
/// so the descriptor's file names are the bare file names, as in NSM.
const INCLUDES: &[&str] = &["proto/networkservice", "proto/registry", "proto/ipam"];

/// The packages of those files, each a module of `lib.rs`.
const PACKAGES: &[&str] = &[
    "connectioncontext",
    "connection",
    "networkservice",
    "registry",
    "ipam",
];

const FILES: &[&str] = &[
    "proto/networkservice/connectioncontext.proto",
    "proto/networkservice/connection.proto",
    "proto/networkservice/networkservice.proto",
    "proto/registry/registry.proto",
    "proto/ipam/ipam.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new(INCLUDES)?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(FILES)?;

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    fs::write(
        out_dir.join("nsm_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Messages and clients, with tonic_prost's codec.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(compiler.file_descriptor_set())?;

    // Servers alone, with our codec (`src/codec.rs`: a request that is not valid protobuf
    // is INVALID_ARGUMENT, not INTERNAL), into `$OUT_DIR/server/`. Every package is
    // external here, so prost generates no message twice; the servers name the first
    // pass's.
    let server_dir = out_dir.join("server");
    fs::create_dir_all(&server_dir)?;
    let mut servers = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("crate::codec::ServerCodec")
        .out_dir(&server_dir);
    for package in PACKAGES {
        servers = servers.extern_path(format!(".{package}"), format!("crate::{package}"));
    }
    servers.compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
