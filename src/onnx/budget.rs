//! How much memory decoding an ONNX file would take, read from its wire format before
//! `prost` builds anything.
//!
//! Decoding turns each message into a struct of up to a few hundred bytes, whatever its
//! size in the file: an empty `NodeProto` is two bytes there and 168 in memory, so a file
//! of nothing but empty messages decodes to about a hundred times its size. The walk below
//! follows the fields [`proto`](super::proto) declares (the ones `prost` keeps; it skips
//! the others without allocating) and adds up what each one costs once decoded, so
//! [`check`] can refuse such a file with an error instead of letting the process run out of
//! memory.

use std::mem::size_of;

use prost::encoding::{decode_key, decode_varint, WireType};

use super::proto::{
    tensor_proto::Segment, tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Most bytes decoding may take beyond [`PER_FILE_BYTE`] per byte of the file.
const BASE_BYTES: u64 = 256 << 20;
/// Decoded bytes allowed per byte of the file: raw tensor data costs one, packed varints
/// up to eight (an `i64` from each byte).
const PER_FILE_BYTE: u64 = 16;
/// What a string or byte-string field costs besides its bytes: the `String` or `Vec`, and
/// as much again for the slack of a growing repeated field.
const STRING_SLOT: u64 = 2 * size_of::<String>() as u64;
/// What a scalar field costs: an 8-byte slot, doubled for a growing repeated field.
const SCALAR_SLOT: u64 = 16;

/// The message types [`proto`](super::proto) declares, as the walk tells their fields apart.
#[derive(Debug, Clone, Copy)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    /// A message without message fields (an opset, a metadata entry, a segment, a
    /// dimension): only its own scalars and strings.
    Leaf(u64),
}

impl Message {
    /// The struct `prost` makes of it, doubled for the slack of a growing repeated field.
    fn slot(self) -> u64 {
        2 * match self {
            Message::Model => size_of::<ModelProto>(),
            Message::Graph => size_of::<GraphProto>(),
            Message::Node => size_of::<NodeProto>(),
            Message::Attribute => size_of::<AttributeProto>(),
            Message::Tensor => size_of::<TensorProto>(),
            Message::ValueInfo => size_of::<ValueInfoProto>(),
            Message::Type => size_of::<TypeProto>(),
            Message::TypeTensor => size_of::<type_proto::Tensor>(),
            Message::Shape => size_of::<TensorShapeProto>(),
            Message::Leaf(size) => size as usize,
        } as u64
    }

    /// The message a field of this one holds, if the field is a declared message field.
    fn field(self, tag: u32) -> Option<Message> {
        let leaf = |size: usize| Some(Message::Leaf(size as u64));
        match (self, tag) {
            (Message::Model, 7) => Some(Message::Graph),
            (Message::Model, 8) => leaf(size_of::<OperatorSetIdProto>()),
            (Message::Model, 14) => leaf(size_of::<StringStringEntryProto>()),
            (Message::Graph, 1) => Some(Message::Node),
            (Message::Graph, 5) => Some(Message::Tensor),
            (Message::Graph, 11..=13) => Some(Message::ValueInfo),
            (Message::Node, 5) => Some(Message::Attribute),
            (Message::Attribute, 5) => Some(Message::Tensor),
            (Message::Tensor, 3) => leaf(size_of::<Segment>()),
            (Message::Tensor, 13) => leaf(size_of::<StringStringEntryProto>()),
            (Message::ValueInfo, 2) => Some(Message::Type),
            (Message::Type, 1) => Some(Message::TypeTensor),
            (Message::TypeTensor, 2) => Some(Message::Shape),
            (Message::Shape, 1) => leaf(size_of::<Dimension>()),
            _ => None,
        }
    }
}

/// Whether decoding `bytes` as a [`ModelProto`] stays within `BASE_BYTES` plus
/// `PER_FILE_BYTE` bytes per byte of the file; `Err` says how much it would take.
/// Malformed wire data passes: `prost`'s decoding reports it.
pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
    let limit = BASE_BYTES.saturating_add(PER_FILE_BYTE.saturating_mul(bytes.len() as u64));
    let mut cost = Message::Model.slot();
    match walk(bytes, Message::Model, &mut cost, limit) {
        Ok(()) | Err(Stop::Malformed) => Ok(()),
        Err(Stop::OverBudget) => Err(format!(
            "decoding it would take more than {} MiB (too many messages for its {} bytes)",
            limit >> 20,
            bytes.len()
        )),
    }
}

/// Why a walk ended early.
enum Stop {
    Malformed,
    OverBudget,
}

/// Adds what the fields of `message` (its encoded bytes) cost once decoded to `cost`.
fn walk(mut buf: &[u8], message: Message, cost: &mut u64, limit: u64) -> Result<(), Stop> {
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|_| Stop::Malformed)?;
        let field = match wire {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(|_| Stop::Malformed)?;
                SCALAR_SLOT
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let width = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                buf = buf.get(width..).ok_or(Stop::Malformed)?;
                SCALAR_SLOT
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|_| Stop::Malformed)?;
                let len = usize::try_from(len).map_err(|_| Stop::Malformed)?;
                let (inner, rest) = buf.split_at_checked(len).ok_or(Stop::Malformed)?;
                buf = rest;
                match message.field(tag) {
                    Some(child) => {
                        *cost = cost.saturating_add(child.slot());
                        walk(inner, child, cost, limit)?;
                        0
                    }
                    // A string, raw bytes or packed scalars (at most eight bytes each).
                    None => STRING_SLOT + 8 * len as u64,
                }
            }
            // Groups are not part of ONNX; prost refuses them.
            WireType::StartGroup | WireType::EndGroup => return Err(Stop::Malformed),
        };
        *cost = cost.saturating_add(field);
        if *cost > limit {
            return Err(Stop::OverBudget);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn node(name: &str) -> NodeProto {
        NodeProto {
            name: name.into(),
            op_type: "Relu".into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_model_of_few_large_tensors_passes() {
        let model = ModelProto {
            graph: Some(GraphProto {
                node: (0..100).map(|i| node(&format!("n{i}"))).collect(),
                initializer: vec![TensorProto {
                    dims: vec![1024, 1024],
                    data_type: 1,
                    raw_data: vec![7; 4 << 20],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(check(&model.encode_to_vec()), Ok(()));
    }

    /// Empty nodes, two bytes each in the file: what the decoded structs would take grows
    /// past the budget long before the file is large.
    #[test]
    fn a_flood_of_empty_messages_is_refused() {
        let empty_node = [0x0a, 0x00]; // GraphProto field 1, length 0
        let nodes = 2_000_000;
        let mut graph = Vec::with_capacity(2 * nodes);
        for _ in 0..nodes {
            graph.extend_from_slice(&empty_node);
        }
        let mut file = vec![0x3a]; // ModelProto field 7 (graph), length-delimited
        let mut len = graph.len() as u64;
        while len >= 0x80 {
            file.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        file.push(len as u8);
        file.extend_from_slice(&graph);
        let err = check(&file).unwrap_err();
        assert!(err.contains("too many messages"), "{err}");
        // The importer asks before decoding, and names the file.
        let err = match super::super::import::import(&file, std::path::Path::new("flood.onnx")) {
            Ok(_) => panic!("a flood was imported"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("flood.onnx") && err.contains("too many messages"),
            "{err}"
        );
        // The same nodes, a few of them, pass.
        assert_eq!(check(&file[..0]), Ok(()));
        let few: Vec<u8> = [0x3a, 0x04, 0x0a, 0x00, 0x0a, 0x00].to_vec();
        assert_eq!(check(&few), Ok(()));
        assert_eq!(
            ModelProto::decode(&few[..])
                .unwrap()
                .graph
                .unwrap()
                .node
                .len(),
            2
        );
    }

    #[test]
    fn malformed_bytes_are_left_to_prost() {
        for bytes in [&[0x3a, 0x05, 0x0a][..], &[0xff; 12], &[0x0b]] {
            assert_eq!(check(bytes), Ok(()), "{bytes:?}");
        }
    }
}
