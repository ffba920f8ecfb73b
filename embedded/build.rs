//! Puts `memory.x` where the linker finds it, and hands the firmware the model and test
//! images to embed: the paths come from the environment at build time, so CI can train,
//! quantize and extract them first (`.ci/steps/35-firmware.sh`).

use std::path::PathBuf;

/// One 28x28 image, one byte a pixel.
const PIXELS: u64 = 784;

fn input(var: &str) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    let Some(value) = std::env::var_os(var) else {
        panic!(
            "{var} is not set: it names a file to embed (see .ci/steps/35-firmware.sh, which \
             sets SOFTNET_FW_MODEL, SOFTNET_FW_IMAGES and SOFTNET_FW_LABELS)"
        );
    };
    let path = std::fs::canonicalize(&value)
        .unwrap_or_else(|e| panic!("{var}={}: {e}", PathBuf::from(&value).display()));
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env={var}={}", path.display());
    path
}

fn len(path: &PathBuf) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("copying memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    input("SOFTNET_FW_MODEL");
    let images = input("SOFTNET_FW_IMAGES");
    let labels = input("SOFTNET_FW_LABELS");
    // Checked here so that a wrong file fails the build with its name, not the firmware.
    let (image_bytes, label_count) = (len(&images), len(&labels));
    assert!(
        image_bytes > 0 && image_bytes % PIXELS == 0,
        "{}: {image_bytes} bytes is not a whole number of {PIXELS}-byte images",
        images.display()
    );
    assert_eq!(
        image_bytes / PIXELS,
        label_count,
        "{} holds {} images but {} holds {label_count} labels",
        images.display(),
        image_bytes / PIXELS,
        labels.display()
    );
}
