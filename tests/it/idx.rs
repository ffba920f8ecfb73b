//! Malformed IDX inputs: each gives its own typed error naming the file.

use std::path::{Path, PathBuf};

use softnet::data::{locate_data_dir, Dataset, Mnist};
use softnet::error::{DataError, IdxErrorKind};

#[cfg(feature = "gz")]
use crate::common::gzip as gz;

use crate::common::{idx_images, idx_labels as labels};

/// An images file claiming `count` images, with `data` bytes of pixels (all 1) after its header.
fn images(count: u32, data: usize) -> Vec<u8> {
    idx_images(&vec![1; data], count)
}

fn load(img: Vec<u8>, lab: Vec<u8>) -> Result<Dataset, softnet::error::IdxError> {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = (dir.path().join("img.gz"), dir.path().join("lab"));
    std::fs::write(&ip, img).unwrap();
    std::fs::write(&lp, lab).unwrap();
    Dataset::load(&ip, &lp).map_err(|mut e| {
        // Keep only the file name: the temp folder differs every run.
        e.path = PathBuf::from(e.path.file_name().unwrap());
        e
    })
}

fn kind(r: Result<Dataset, softnet::error::IdxError>) -> (String, IdxErrorKind) {
    let e = r.unwrap_err();
    (e.path.display().to_string(), e.kind)
}

#[test]
#[cfg(feature = "gz")]
fn a_valid_pair_loads_gzip_or_raw_whatever_the_name() {
    let d = load(gz(&images(2, 2 * 784)), labels(&[3, 9])).unwrap();
    assert_eq!((d.len(), d.labels()), (2, &[3u8, 9][..]));
    let d = load(images(1, 784), gz(&labels(&[4]))).unwrap();
    assert_eq!(d.image(0).len(), 784);
}

#[test]
fn malformed_inputs_each_have_their_error() {
    type Case = (&'static str, Vec<u8>, Vec<u8>, (&'static str, IdxErrorKind));
    let cases: Vec<Case> = vec![
        (
            "empty file",
            vec![],
            labels(&[1]),
            ("img.gz", IdxErrorKind::Empty),
        ),
        (
            "truncated pixels",
            images(2, 784 + 10),
            labels(&[1, 2]),
            (
                "img.gz",
                IdxErrorKind::Truncated {
                    expected: 16 + 1568,
                    found: 16 + 794,
                },
            ),
        ),
        (
            "wrong magic",
            labels(&[1]),
            labels(&[1]),
            (
                "img.gz",
                IdxErrorKind::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                },
            ),
        ),
        (
            "count mismatch",
            images(2, 1568),
            labels(&[1, 2, 3]),
            (
                "lab",
                IdxErrorKind::CountMismatch {
                    images: 2,
                    labels: 3,
                },
            ),
        ),
        (
            "label above 9",
            images(1, 784),
            labels(&[12]),
            (
                "lab",
                IdxErrorKind::LabelOutOfRange {
                    index: 0,
                    value: 12,
                    classes: 10,
                },
            ),
        ),
    ];
    for (what, img, lab, (file, expected)) in cases {
        assert_eq!(kind(load(img, lab)), (file.to_string(), expected), "{what}");
    }
}

#[test]
#[cfg(feature = "gz")]
fn huge_dimensions_do_not_allocate() {
    // A header claiming u32::MAX images, and no pixels.
    let f = images(u32::MAX, 0);
    let (file, k) = kind(load(gz(&f), labels(&[1])));
    assert_eq!(file, "img.gz");
    assert!(
        matches!(k, IdxErrorKind::Truncated { expected, found: 16 } if expected == 16 + u64::from(u32::MAX) * 784),
        "{k:?}"
    );
}

#[test]
#[cfg(feature = "gz")]
fn not_gzip_but_named_gz_is_read_as_raw_and_corrupt_gzip_is_an_error() {
    // A raw file named .gz is fine: detection is by content.
    assert!(load(images(1, 784), labels(&[0])).is_ok());
    // Starts like gzip, is not.
    let mut fake = vec![0x1f, 0x8b];
    fake.extend_from_slice(b"definitely not deflate");
    let (file, k) = kind(load(fake, labels(&[0])));
    assert_eq!(file, "img.gz");
    assert!(matches!(k, IdxErrorKind::Gzip(_)), "{k:?}");
    // A gzip stream cut short.
    let full = gz(&images(1, 784));
    let (_, k) = kind(load(full[..full.len() / 2].to_vec(), labels(&[0])));
    assert!(matches!(k, IdxErrorKind::Gzip(_)), "{k:?}");
}

#[test]
fn error_messages_name_the_file() {
    let e = load(vec![], labels(&[1])).unwrap_err();
    assert_eq!(e.to_string(), "img.gz: the file is empty");
}

#[test]
fn a_missing_folder_lists_the_four_files() {
    let err = locate_data_dir(Some(Path::new("/nonexistent/mnist"))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }));
    for name in softnet::data::FILE_NAMES {
        assert!(msg.contains(name), "{msg}");
    }
    assert!(msg.contains("/nonexistent/mnist"), "{msg}");
    assert!(Mnist::load(Path::new("/nonexistent")).is_err());
}
