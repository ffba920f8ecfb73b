//! Inputs the fuzz targets (`fuzz/`) found crashing, replayed as plain tests.

use softnet::io::npy::parse_npy;

/// Found by the `npy` target in its first CI run: a header whose `'shape'` value starts with
/// `)` made `parse_npy` slice `text[1..0]` and panic. It must be an error.
#[test]
fn npy_shape_closing_before_opening_is_an_error_not_a_panic() {
    let found = [
        &b"\x93NUMPY\x01\x00v\x00{NUMPY\x01\x00v\x00{'descr': '<f4', 'fortra_____"[..],
        &b"__n_order': Fe: '<f4', 'fortran_order': False, 'sha, 'shape'), }      "[..],
        &b"            \x01            $     }    \x00\x00    (  "[..],
    ]
    .concat();
    assert_eq!(found.len(), 164);
    assert_eq!(
        parse_npy(&found).unwrap_err(),
        "malformed shape in the .npy header"
    );
    let minimal = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': ), }");
    assert_eq!(
        parse_npy(&minimal).unwrap_err(),
        "malformed shape in the .npy header"
    );
    // Nor may anything but a parenthesised shape pass.
    let no_paren = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': 3, }");
    assert_eq!(
        parse_npy(&no_paren).unwrap_err(),
        "malformed shape in the .npy header"
    );
    let fine = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
    assert_eq!(
        parse_npy(&[fine, vec![0; 4]].concat()).unwrap().shape,
        Vec::<usize>::new()
    );
}

/// A version-1 `.npy` file with `header` and no data.
fn npy_with_header(header: &str) -> Vec<u8> {
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(header.len() as u16).to_le_bytes());
    f.extend_from_slice(header.as_bytes());
    f
}
