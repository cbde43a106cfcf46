//! Regenerates include/cyrus_mboxevent.h from the C ABI in src/ffi.rs.
//! `make check` fails when the committed header differs from this output.
//!
//! cbindgen does not expand macros, so the functions declared with
//! `ffi_fn!` are handed to it as plain prototypes, written here from each
//! declaration's attributes and signature.

use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Item, Signature};

/// The head of one `ffi_fn!` declaration; the rest (body, fallback) is not
/// the header's business.
struct Declaration {
    attrs: Vec<Attribute>,
    sig: Signature,
}

impl Parse for Declaration {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let sig: Signature = input.parse()?;
        input.parse::<proc_macro2::TokenStream>()?;
        Ok(Declaration { attrs, sig })
    }
}

/// `#[no_mangle] pub extern "C" fn …` items with empty bodies for the
/// `ffi_fn!` declarations in `source`, in their order: what cbindgen reads.
fn prototypes(source: &str) -> String {
    let file = syn::parse_file(source).expect("src/ffi.rs parses");
    let mut out = String::new();
    for item in file.items {
        let Item::Macro(m) = item else { continue };
        if !m.mac.path.is_ident("ffi_fn") {
            continue;
        }
        let Declaration { attrs, mut sig } = m.mac.parse_body().expect("an ffi_fn! declaration");
        sig.abi = Some(syn::parse_quote!(extern "C"));
        out.push_str(&quote!(#(#attrs)* #[no_mangle] pub #sig {}).to_string());
        out.push('\n');
    }
    out
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The soname lets Cyrus link against libcyrus_mboxevent.so.0.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcyrus_mboxevent.so.0");
    let ffi = std::fs::read_to_string(format!("{dir}/src/ffi.rs")).expect("src/ffi.rs");
    let declared = format!("{out_dir}/ffi_fns.rs");
    std::fs::write(&declared, prototypes(&ffi)).expect("writing the prototypes");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_src(&declared)
        .with_config(config)
        .generate()
        .expect("generating the C header")
        .write_to_file(format!("{dir}/include/cyrus_mboxevent.h"));
}
