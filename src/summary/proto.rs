//! The protobuf messages of TensorBoard event files, as `prost` structs (no `protoc`).
//!
//! Only the fields softnet writes are declared; field numbers follow TensorBoard's
//! `tensorboard/compat/proto/{event,summary,histogram,graph,node_def,attr_value,tensor_shape}.proto`.
//! Decoding a file written by another tool skips the fields left out here.

use std::collections::BTreeMap;

/// One record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "event::What", tags = "3, 4, 5")]
    pub what: Option<event::What>,
}

/// Nested types of [`Event`].
pub mod event {
    /// The payload of an [`Event`](super::Event).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// File header; TensorBoard expects `"brain.Event:2"` in the first record.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// A serialized [`GraphDef`](super::GraphDef).
        #[prost(bytes = "vec", tag = "4")]
        GraphDef(Vec<u8>),
        /// Scalars, images, histograms.
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// A set of tagged values logged at one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

/// Nested types of [`Summary`].
pub mod summary {
    /// One tagged value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        /// Tag; `/` groups the cards in TensorBoard.
        #[prost(string, tag = "1")]
        pub tag: String,
        /// The value.
        #[prost(oneof = "value::Kind", tags = "2, 4, 5")]
        pub kind: Option<value::Kind>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// The kinds of value softnet writes (TensorBoard converts these legacy kinds itself).
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            /// A scalar.
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            /// An encoded image.
            #[prost(message, tag = "4")]
            Image(super::Image),
            /// A histogram.
            #[prost(message, tag = "5")]
            Histo(super::super::HistogramProto),
        }
    }

    /// An encoded image.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        /// Height in pixels.
        #[prost(int32, tag = "1")]
        pub height: i32,
        /// Width in pixels.
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        /// PNG bytes.
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }
}

/// A histogram: bucket `i` counts the values in `(bucket_limit[i-1], bucket_limit[i]]`
/// (bucket 0 from `min`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    /// Smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of the squares of the values.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edges of the buckets, increasing.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Count per bucket.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// A computation graph, drawn by TensorBoard's Graphs tab.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    /// The nodes.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
}

/// One operation of a [`GraphDef`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    /// Unique name; `/` makes collapsible scopes (`logits/MatMul`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Operation label (`MatMul`, `Add`, ...).
    #[prost(string, tag = "2")]
    pub op: String,
    /// Inputs: `"node"`, `"node:k"` (output k) or `"^node"` (control edge).
    #[prost(string, repeated, tag = "3")]
    pub input: Vec<String>,
    /// Attributes (`dtype`, `_output_shapes`); a `BTreeMap` keeps the encoding deterministic.
    #[prost(btree_map = "string, message", tag = "5")]
    pub attr: BTreeMap<String, AttrValue>,
}

/// TensorFlow's `DT_FLOAT`.
pub const DT_FLOAT: i32 = 1;
/// TensorFlow's `DT_INT32`.
pub const DT_INT32: i32 = 3;
/// TensorFlow's `DT_INT64`.
pub const DT_INT64: i32 = 9;
/// TensorFlow's `DT_BOOL`.
pub const DT_BOOL: i32 = 10;

/// A node attribute value (the kinds softnet uses).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    /// The value.
    #[prost(oneof = "attr_value::Value", tags = "1, 6, 7")]
    pub value: Option<attr_value::Value>,
}

/// Nested types of [`AttrValue`].
pub mod attr_value {
    /// The value of an [`AttrValue`](super::AttrValue).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A list (used for `_output_shapes`).
        #[prost(message, tag = "1")]
        List(ListValue),
        /// A data type (`DT_FLOAT`, ...).
        #[prost(int32, tag = "6")]
        Type(i32),
        /// A shape.
        #[prost(message, tag = "7")]
        Shape(super::TensorShapeProto),
    }

    /// A list of attribute values (only shapes are declared).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        /// Shapes.
        #[prost(message, repeated, tag = "7")]
        pub shape: Vec<super::TensorShapeProto>,
    }
}

/// A tensor shape; a dimension of size -1 is unknown (the batch).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
}

/// Nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        /// Size, -1 if unknown.
        #[prost(int64, tag = "1")]
        pub size: i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn file_version_event_bytes() {
        let event = Event {
            wall_time: 1.5,
            step: 0,
            what: Some(event::What::FileVersion("brain.Event:2".into())),
        };
        let mut expected = vec![0x09]; // field 1, fixed64
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x1A, 13]); // field 3, length-delimited, 13 bytes
        expected.extend_from_slice(b"brain.Event:2");
        assert_eq!(event.encode_to_vec(), expected);
    }

    #[test]
    fn scalar_summary_bytes() {
        let event = Event {
            wall_time: 0.0,
            step: 300,
            what: Some(event::What::Summary(Summary {
                value: vec![summary::Value {
                    tag: "a".into(),
                    kind: Some(summary::value::Kind::SimpleValue(0.5)),
                }],
            })),
        };
        // step: field 2 varint 300 = 0xAC 0x02; summary: field 5 len 10;
        // value: field 1 len 8; tag: field 1 len 1 "a"; simple_value: field 2 fixed32.
        let mut expected = vec![0x10, 0xAC, 0x02, 0x2A, 10, 0x0A, 8, 0x0A, 1, b'a', 0x15];
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(event.encode_to_vec(), expected);
        assert_eq!(Event::decode(&expected[..]).unwrap(), event);
    }

    #[test]
    fn histogram_limits_are_packed() {
        let h = HistogramProto {
            bucket_limit: vec![1.0, 2.0],
            ..Default::default()
        };
        let bytes = h.encode_to_vec();
        // field 6, length-delimited, 16 bytes, then the two doubles.
        assert_eq!(&bytes[..2], &[0x32, 16]);
        assert_eq!(&bytes[2..10], &1.0f64.to_le_bytes());
    }
}
