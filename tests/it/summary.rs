//! Event files written by `SummaryWriter`, read back byte by byte with an independent
//! CRC-32C and an independent framing parser, then decoded with prost.

use prost::Message;
use softnet::summary::proto::{event, summary, Event};
use softnet::summary::{ParamView, SummaryWriter, TensorBoardLogger};
use std::path::Path;

/// CRC-32C from a table built here from the reflected Castagnoli polynomial: independent of
/// the `crc32c` crate the library uses.
fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    table
}

fn crc32c(table: &[u32; 256], data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

// The rotation is spelled out on purpose, independent of the library's `rotate_right`.
#[allow(clippy::manual_rotate)]
fn masked(table: &[u32; 256], data: &[u8]) -> u32 {
    let c = crc32c(table, data);
    ((c >> 15) | (c << 17)).wrapping_add(0xA282_EAD8)
}

/// Parses the framing by hand, asserting both CRCs of every record; returns the payloads.
fn parse(bytes: &[u8]) -> Vec<Vec<u8>> {
    let table = crc32c_table();
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        assert!(bytes.len() - pos >= 12, "truncated header at {pos}");
        let len_bytes = &bytes[pos..pos + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        assert_eq!(len_crc, masked(&table, len_bytes), "length crc at {pos}");
        let data = &bytes[pos + 12..pos + 12 + len];
        let data_crc =
            u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(&table, data), "data crc at {pos}");
        records.push(data.to_vec());
        pos += 16 + len;
    }
    assert_eq!(pos, bytes.len());
    records
}

fn events_in(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).unwrap();
    parse(&bytes)
        .iter()
        .map(|r| Event::decode(&r[..]).unwrap())
        .collect()
}

fn only_file(dir: &Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

fn scalars(events: &[Event]) -> Vec<(i64, String, f32)> {
    let mut out = Vec::new();
    for e in events {
        if let Some(event::What::Summary(s)) = &e.what {
            for v in &s.value {
                if let Some(summary::value::Kind::SimpleValue(x)) = v.kind {
                    out.push((e.step, v.tag.clone(), x));
                }
            }
        }
    }
    out
}

#[test]
fn check_vector_of_the_test_crc() {
    assert_eq!(crc32c(&crc32c_table(), b"123456789"), 0xE306_9283);
}

#[test]
fn framing_and_scalars_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(&dir.path().join("run")).unwrap();
    let path = w.path().to_path_buf();
    w.add_scalar("loss/cross_entropy", 2.5, 0);
    w.add_scalar("evaluation/accuracy", 0.9182, 100);
    w.add_scalar("a/b", -1.5e-7, i64::from(i32::MAX) + 1);
    w.flush().unwrap();

    let bytes = std::fs::read(&path).unwrap();
    // The first record byte by byte: the file_version event, framed.
    let first = Event {
        wall_time: 0.0,
        step: 0,
        what: Some(event::What::FileVersion("brain.Event:2".into())),
    };
    let payload_len = first.encoded_len() + 9; // plus the wall_time field: key + 8 bytes
    assert_eq!(&bytes[..8], &(payload_len as u64).to_le_bytes());
    let table = crc32c_table();
    assert_eq!(&bytes[8..12], &masked(&table, &bytes[..8]).to_le_bytes());
    assert_eq!(bytes[12], 0x09); // wall_time: field 1, fixed64
    let wall = f64::from_le_bytes(bytes[13..21].try_into().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - wall).abs() < 60.0, "wall time {wall} vs now {now}");
    assert_eq!(&bytes[21..23], &[0x1A, 13]); // file_version: field 3, 13 bytes
    assert_eq!(&bytes[23..36], b"brain.Event:2");
    assert_eq!(
        &bytes[36..40],
        &masked(&table, &bytes[12..36]).to_le_bytes()
    );

    let events = events_in(&path);
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[0].what,
        Some(event::What::FileVersion("brain.Event:2".into()))
    );
    assert_eq!(
        scalars(&events),
        [
            (0, "loss/cross_entropy".to_string(), 2.5),
            (100, "evaluation/accuracy".to_string(), 0.9182),
            (i64::from(i32::MAX) + 1, "a/b".to_string(), -1.5e-7),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].wall_time <= w[1].wall_time));
}

#[test]
fn flush_is_incremental_and_each_flush_leaves_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SummaryWriter::create(dir.path()).unwrap();
    w.add_scalar("x", 1.0, 1);
    w.flush().unwrap();
    assert_eq!(scalars(&events_in(w.path())).len(), 1);
    w.add_scalar("x", 2.0, 2);
    // Not flushed yet: the file still ends at a record boundary with one scalar.
    assert_eq!(scalars(&events_in(w.path())).len(), 1);
    w.flush().unwrap();
    assert_eq!(
        scalars(&events_in(w.path())),
        [(1, "x".to_string(), 1.0), (2, "x".to_string(), 2.0)]
    );
}

#[test]
fn logger_writes_the_tutorial_tags() {
    let dir = tempfile::tempdir().unwrap();
    let mut tb = TensorBoardLogger::create(dir.path()).unwrap();
    tb.log_graph(784, &[], 10).unwrap();
    let w: Vec<f32> = (0..7840).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
    let b: Vec<f32> = (0..10).map(|i| i as f32 * 0.1).collect();
    let params = [
        ParamView {
            path: "variables/Weight",
            shape: &[784, 10],
            values: &w,
        },
        ParamView {
            path: "variables/Bias",
            shape: &[10],
            values: &b,
        },
    ];
    let logits = vec![0.5f32; 200];
    tb.log_eval(
        100,
        (0.4, 0.9),
        (0.45, 0.8912),
        &params,
        &logits[..100],
        &logits,
    )
    .unwrap();
    tb.log_weight_images(100, &params).unwrap();

    let train = events_in(&only_file(&dir.path().join("train")));
    let test = events_in(&only_file(&dir.path().join("test")));
    let test_scalars = scalars(&test);
    assert_eq!(
        test_scalars[..2],
        [
            (100, "loss/cross_entropy".to_string(), 0.45),
            (100, "evaluation/accuracy".to_string(), 0.8912),
        ]
    );
    // The parameters' statistics are in both runs, as the tutorial's merged summary puts them.
    let parameter_scalars = |s: &[(i64, String, f32)]| s[2..].to_vec();
    assert_eq!(
        parameter_scalars(&test_scalars),
        parameter_scalars(&scalars(&train))
    );
    assert_eq!(test_scalars.len(), 2 + 2 * 4);
    let train_scalars = scalars(&train);
    let get = |tag: &str| {
        train_scalars
            .iter()
            .find(|(_, t, _)| t == tag)
            .unwrap_or_else(|| panic!("no {tag}"))
            .2
    };
    assert_eq!(get("evaluation/accuracy"), 0.9);
    // The mean of the f32 values, taken in f64: 0.45000000670552254 -> 0.45000002f32.
    let mean = b.iter().map(|&v| f64::from(v)).sum::<f64>() / 10.0;
    assert_eq!(get("variables/Bias/summaries/mean"), mean as f32);
    assert!((get("variables/Bias/summaries/mean") - 0.45).abs() < 1e-7);
    assert_eq!(get("variables/Bias/summaries/max"), b[9]); // 9.0f32 * 0.1 = 0.90000004
    assert_eq!(get("variables/Bias/summaries/min"), 0.0);
    // Population stddev of 0, 0.1, ..., 0.9 = 0.1 * sqrt(8.25).
    assert!((get("variables/Bias/summaries/stddev") - 0.287_228_14).abs() < 1e-6);
    assert_eq!(get("variables/Weight/summaries/min"), -0.06);

    let mut histos = Vec::new();
    let mut images = Vec::new();
    let mut graphs = 0;
    for e in train.iter().chain(&test) {
        match &e.what {
            Some(event::What::Summary(s)) => {
                for v in &s.value {
                    match &v.kind {
                        Some(summary::value::Kind::Histo(h)) => {
                            histos.push((v.tag.clone(), h.clone()))
                        }
                        Some(summary::value::Kind::Image(i)) => {
                            images.push((v.tag.clone(), i.clone()))
                        }
                        _ => {}
                    }
                }
            }
            Some(event::What::GraphDef(bytes)) => {
                let g = softnet::summary::proto::GraphDef::decode(&bytes[..]).unwrap();
                assert!(g.node.iter().any(|n| n.name == "logits/MatMul"));
                graphs += 1;
            }
            _ => {}
        }
    }
    assert_eq!(graphs, 1);
    let tags: Vec<&str> = histos.iter().map(|(t, _)| t.as_str()).collect();
    // The train run's, then the test run's: the same parameters, their own logits.
    let run = [
        "variables/Weight/summaries/histogram",
        "variables/Bias/summaries/histogram",
        "logits/logits_histogram",
    ];
    assert_eq!(tags, [run, run].concat());
    assert_eq!(histos[0].1.bucket.iter().sum::<f64>(), 7840.0);
    assert_eq!(histos[2].1.num, 100.0);
    assert_eq!(histos[5].1.num, 200.0);
    assert_eq!(images.len(), 10);
    assert_eq!(images[3].0, "variables/Weight/images/image/3");
    assert!(images
        .iter()
        .all(|(_, i)| (i.width, i.height, i.colorspace) == (28, 28, 1)));
    assert!(images
        .iter()
        .all(|(_, i)| i.encoded_image_string.starts_with(b"\x89PNG")));
}
