//! TFRecord framing, the container of TensorBoard event files.
//!
//! Each record is `u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)`.
//! CRC-32C is the Castagnoli CRC (reflected polynomial 0x82F63B78), not the IEEE CRC of zlib.

use super::SummaryError;
use std::path::Path;

/// Constant added by TensorFlow's CRC mask.
const MASK_DELTA: u32 = 0xA282_EAD8;

/// TensorFlow's CRC mask: rotate right by 15 bits and add a constant, so that a CRC stored
/// inside CRC'd data does not make the outer CRC trivially predictable.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// `mask(crc32c(data))`, the checksum stored in TFRecord framing.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c::crc32c(data))
}

/// Bytes a record of `len` payload bytes takes in a file.
pub fn framed_len(len: usize) -> usize {
    len + 16
}

/// Appends one framed record holding `data` to `out`.
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.reserve(framed_len(data.len()));
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// Splits a buffer of framed records into their payloads, verifying both CRCs of each.
///
/// `path` only names the source in errors. Unlike TensorBoard, which silently stops at the
/// first bad record, this reports it: it is meant for tests and checks.
pub fn read_records<'a>(path: &Path, mut bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, SummaryError> {
    let total = bytes.len();
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let offset = total - bytes.len();
        let corrupt = |problem| SummaryError::Corrupt {
            path: path.to_path_buf(),
            offset,
            problem,
        };
        let (header, rest) = bytes
            .split_first_chunk::<12>()
            .ok_or_else(|| corrupt("truncated record header"))?;
        let (len_bytes, len_crc) = header.split_at(8);
        if u32::from_le_bytes(len_crc.try_into().expect("4 bytes")) != masked_crc32c(len_bytes) {
            return Err(corrupt("length checksum mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n.checked_add(4).is_some_and(|n| n <= rest.len()))
            .ok_or_else(|| corrupt("truncated record data"))?;
        let (data, rest) = rest.split_at(len);
        let (data_crc, rest) = rest.split_at(4);
        if u32::from_le_bytes(data_crc.try_into().expect("4 bytes")) != masked_crc32c(data) {
            return Err(corrupt("data checksum mismatch"));
        }
        records.push(data);
        bytes = rest;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitwise CRC-32C straight from the definition: an oracle independent of the crate.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc32c_check_vector() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn mask_matches_tensorflow() {
        // Values from TensorBoard's own
        // `tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(masked_crc32c(&3u64.to_le_bytes()), 0x0E49_99B0);
        assert_eq!(masked_crc32c(b"abc"), 0x21F1_576E);
        // Independent mask of the bitwise CRC.
        let crc = crc32c_bitwise(b"hello");
        // Spelled out on purpose, independent of `rotate_right` in `mask`.
        #[allow(clippy::manual_rotate)]
        let by_hand = ((crc >> 15) | (crc << 17)).wrapping_add(0xA282_EAD8);
        assert_eq!(masked_crc32c(b"hello"), by_hand);
    }

    #[test]
    fn framed_record_bytes() {
        let mut out = Vec::new();
        write_record(&mut out, b"abc");
        assert_eq!(out.len(), framed_len(3));
        let mut expected = vec![3, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&0x0E49_99B0u32.to_le_bytes());
        expected.extend_from_slice(b"abc");
        expected.extend_from_slice(&0x21F1_576Eu32.to_le_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn read_back_and_detect_corruption() {
        let mut out = Vec::new();
        write_record(&mut out, b"first");
        write_record(&mut out, b"");
        write_record(&mut out, &[7u8; 300]);
        let path = Path::new("mem");
        let records = read_records(path, &out).unwrap();
        assert_eq!(records, vec![&b"first"[..], &b""[..], &[7u8; 300][..]]);

        let mut bad = out.clone();
        bad[12] ^= 1; // first payload byte
        let err = read_records(path, &bad).unwrap_err().to_string();
        assert_eq!(err, "event file mem: data checksum mismatch at byte 0");

        let mut bad = out.clone();
        bad[21] ^= 1; // length of the second record
        let err = read_records(path, &bad).unwrap_err().to_string();
        assert_eq!(err, "event file mem: length checksum mismatch at byte 21");

        let err = read_records(path, &out[..out.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated record data"), "{err}");
    }
}
