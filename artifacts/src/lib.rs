//! Paths of the sample guest components, built from source for
//! `wasm32-wasip2` by this crate's `build.rs` whenever the host's tests,
//! benches or demo are built.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Reads a sample component's bytes.
///
/// # Errors
///
/// The I/O error of reading `path`.
pub fn read(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}
