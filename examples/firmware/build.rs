//! Puts `memory.x` where cortex-m-rt's `link.x` finds it and links with `link.x`, so the
//! image builds the same from any directory (no `.cargo/config.toml` rustflags needed).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // Identical code folding: rust-lld merges functions whose code is the same (the
    // generic instantiations that compile to the same instructions). Rust gives no
    // guarantee that distinct functions have distinct addresses, so this is sound.
    println!("cargo:rustc-link-arg-bins=--icf=all");
}
