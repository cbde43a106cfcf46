//! Regenerates include/cyrus_mboxevent.h from the C ABI in src/ffi.rs.
//! `make check` fails when the committed header differs from this output.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The soname lets Cyrus link against libcyrus_mboxevent.so.0.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcyrus_mboxevent.so.0");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("generating the C header")
        .write_to_file(format!("{dir}/include/cyrus_mboxevent.h"));
}
