//! Files: models in the safetensors format, written atomically.

pub mod model_file;
pub mod npy;
pub mod quantized;

pub use model_file::{load_model, load_model_bytes, model_to_bytes, save_model, write_atomically};
pub use quantized::{
    load_any_model, load_any_model_bytes, load_quantized_bytes, quantized_to_bytes, AnyModel,
    QuantizedModel,
};
