//! Tells the tests whether real MNIST and the TensorFlow reference outputs are on this machine,
//! so that a test needing them shows as `ignored` in `cargo test`'s summary where they are
//! absent, instead of passing without having checked anything.
//!
//! The folders are found as the tests find them (tests/it/common.rs): MNIST in `$MNIST_DIR`,
//! else `../shared/data/mnist`; the reference outputs in `$SOFTNET_REFERENCE_DIR`, else
//! `../shared/reference`. With `SOFTNET_REQUIRE_DATA=1` nothing is ignored, so a missing folder
//! fails the tests that need it. The library itself never looks at these flags.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(softnet_no_mnist)");
    println!("cargo::rustc-check-cfg=cfg(softnet_no_reference)");
    for var in ["MNIST_DIR", "SOFTNET_REFERENCE_DIR", "SOFTNET_REQUIRE_DATA"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let folder = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join(default))
    };
    let mnist = folder("MNIST_DIR", "../shared/data/mnist");
    let reference = folder("SOFTNET_REFERENCE_DIR", "../shared/reference");
    let has_mnist = ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]
        .iter()
        .any(|f| mnist.join(f).is_file());
    let has_reference = reference.join("tf_seed_2000").is_dir();
    // A folder that is there is watched, so removing or replacing it is noticed; one that
    // is not cannot be (setting the variable is, and so is `touch build.rs`).
    for (dir, found) in [(&mnist, has_mnist), (&reference, has_reference)] {
        if found {
            println!("cargo::rerun-if-changed={}", display(dir));
        }
    }
    let required = std::env::var_os("SOFTNET_REQUIRE_DATA").is_some_and(|v| v == "1");
    if !has_mnist && !required {
        println!("cargo::rustc-cfg=softnet_no_mnist");
    }
    if !has_reference && !required {
        println!("cargo::rustc-cfg=softnet_no_reference");
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
