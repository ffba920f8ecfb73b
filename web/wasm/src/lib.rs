//! The digit pad's WebAssembly module: softnet's classifier and its MNIST-style preprocessing
//! (`softnet::preprocess`, the code `softnet predict` runs on PNG files) behind plain
//! `extern "C"` functions, loaded by `web/softnet.js` without wasm-bindgen.
//!
//! Memory protocol: JavaScript asks for a buffer with [`alloc_buffer`], writes into it through
//! the exported `memory`, passes its address and length, and frees it with [`free_buffer`].
//! Up to [`SLOTS`] models are held at once, one per slot. Messages (a model's description, or
//! why it failed to load) are read with [`message_ptr`] and [`message_len`] as UTF-8.

use std::cell::RefCell;

use softnet::preprocess::{gray_from_rgba, mnist_from_gray, PreprocessError, SIDE};
use softnet::ClassifierRef;

/// How many models can be loaded at once.
pub const SLOTS: usize = 8;

/// Probabilities [`predict`] writes: 10 classes, then the top three's classes and
/// probabilities.
pub const PREDICT_OUT: usize = 16;

/// A loaded model: the file's bytes, validated once by [`ClassifierRef::parse`], and the
/// scratch its forward pass runs in. `ClassifierRef` borrows the bytes, so each prediction
/// parses them again in place (a walk over the header: microseconds) instead of keeping a
/// self-referential struct.
struct Loaded {
    bytes: Box<[u8]>,
    scratch: Vec<f32>,
}

thread_local! {
    static MODELS: RefCell<[Option<Loaded>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_message(text: String) {
    MESSAGE.with(|m| *m.borrow_mut() = text);
}

/// A zeroed buffer of `len` bytes (at least one) for the caller to fill and free with
/// [`free_buffer`].
#[no_mangle]
pub extern "C" fn alloc_buffer(len: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; len.max(1)].into_boxed_slice()).cast()
}

/// Frees a buffer from [`alloc_buffer`].
///
/// # Safety
/// `ptr` and `len` are exactly what one [`alloc_buffer`] call took and returned, and the
/// buffer is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free_buffer(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: by the contract above, `ptr` is the start of a boxed slice of `len.max(1)`
    // bytes made by `alloc_buffer`, freed once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len.max(1))) });
}

/// Address of the last message: the description of the model last loaded, or why it failed.
#[no_mangle]
pub extern "C" fn message_ptr() -> *const u8 {
    MESSAGE.with(|m| m.borrow().as_ptr())
}

/// Length in bytes of the last message.
#[no_mangle]
pub extern "C" fn message_len() -> usize {
    MESSAGE.with(|m| m.borrow().len())
}

/// Parses and validates a model file (safetensors, f32 or int8, as `softnet train --save`
/// writes) into `slot`. Returns 0 on success (the message then describes the model), -1 for
/// a slot out of range, -2 for a model softnet refuses (the message says why).
///
/// # Safety
/// `ptr` points to `len` readable bytes (a buffer from [`alloc_buffer`]).
#[no_mangle]
pub unsafe extern "C" fn load_model(slot: usize, ptr: *const u8, len: usize) -> i32 {
    if slot >= SLOTS || ptr.is_null() {
        set_message(format!("no model slot {slot} (there are {SLOTS})"));
        return -1;
    }
    // SAFETY: by the contract above, `ptr` points to `len` initialised bytes that nothing
    // writes while this call reads them.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    match ClassifierRef::parse(bytes) {
        Ok(classifier) => {
            set_message(format!(
                "{} classes, {} weights",
                classifier.classes(),
                if classifier.is_int8() { "int8" } else { "f32" }
            ));
            let loaded = Loaded {
                scratch: vec![0.0; classifier.scratch_len()],
                bytes: bytes.into(),
            };
            MODELS.with(|m| m.borrow_mut()[slot] = Some(loaded));
            0
        }
        Err(e) => {
            MODELS.with(|m| m.borrow_mut()[slot] = None);
            set_message(e.to_string());
            -2
        }
    }
}

/// Turns a `width` x `height` RGBA image (a canvas's pixels, `4 * width * height` bytes) into
/// the 28x28 image the models see, written to `out` (784 bytes), exactly as `softnet predict`
/// does for a PNG of the same pixels. Returns 0 on success, 1 when there is no ink (`out` is
/// zeroed), 2 for bad dimensions (the message says why).
///
/// # Safety
/// `rgba` points to `4 * width * height` readable bytes and `out` to 784 writable bytes,
/// not overlapping (buffers from [`alloc_buffer`]).
#[no_mangle]
pub unsafe extern "C" fn preprocess(
    rgba: *const u8,
    width: usize,
    height: usize,
    out: *mut u8,
) -> i32 {
    let Some(len) = width.checked_mul(height).and_then(|n| n.checked_mul(4)) else {
        set_message(format!("bad image dimensions: {width}x{height}"));
        return 2;
    };
    if rgba.is_null() || out.is_null() {
        set_message("null buffer".to_string());
        return 2;
    }
    // SAFETY: by the contract above, `rgba` holds `len` readable bytes and `out` 784 writable
    // bytes that do not overlap them.
    let (rgba, out) = unsafe {
        (
            std::slice::from_raw_parts(rgba, len),
            std::slice::from_raw_parts_mut(out, SIDE * SIDE),
        )
    };
    // Grey once, then the very path `softnet predict` takes for a PNG of these pixels
    // (`decode_gray`, then `mnist_from_gray`); `mnist_from_rgba` gives the same bytes (a test
    // checks it) but reads each pixel a few times, which costs more on a large canvas.
    let gray: Vec<u8> = rgba
        .chunks_exact(4)
        .map(|p| gray_from_rgba(p[0], p[1], p[2], p[3]))
        .collect();
    match mnist_from_gray(width, height, &gray) {
        Ok(image) => {
            out.copy_from_slice(&image);
            0
        }
        Err(PreprocessError::Empty) => {
            out.fill(0);
            1
        }
        Err(e) => {
            set_message(e.to_string());
            2
        }
    }
}

/// Classifies a 28x28 image (784 bytes, 0 = background) with the model in `slot`, writing
/// [`PREDICT_OUT`] floats to `out`: the 10 class probabilities, the top three classes, then
/// their probabilities (as `softnet predict` prints them). Returns the predicted class, or -1
/// when the slot holds no model.
///
/// # Safety
/// `image` points to 784 readable bytes and `out` to `PREDICT_OUT` writable, aligned f32
/// (buffers from [`alloc_buffer`]).
#[no_mangle]
pub unsafe extern "C" fn predict(slot: usize, image: *const u8, out: *mut f32) -> i32 {
    if image.is_null() || out.is_null() || !out.is_aligned() {
        set_message("null or misaligned buffer".to_string());
        return -1;
    }
    // SAFETY: by the contract above, `image` holds 784 readable bytes and `out` PREDICT_OUT
    // aligned, writable f32 that do not overlap them.
    let (image, out) = unsafe {
        (
            &*image.cast::<[u8; SIDE * SIDE]>(),
            std::slice::from_raw_parts_mut(out, PREDICT_OUT),
        )
    };
    MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let Some(loaded) = models.get_mut(slot).and_then(Option::as_mut) else {
            set_message(format!("no model in slot {slot}"));
            return -1;
        };
        let Loaded { bytes, scratch } = loaded;
        let classifier = ClassifierRef::parse(bytes).expect("validated when loaded");
        let classes = classifier.classes();
        if classes > 10 {
            set_message(format!(
                "the model in slot {slot} has {classes} classes, not 10"
            ));
            return -1;
        }
        out.fill(0.0);
        classifier.probabilities_into(image, scratch, &mut out[..classes]);
        // The top three as `softnet predict` ranks them: by probability, ties to the lower
        // class; -1 where the model has fewer than three classes.
        let mut order = [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        order[..classes].sort_by(|&a, &b| out[b].total_cmp(&out[a]).then(a.cmp(&b)));
        for k in 0..3 {
            let (class, p) = if k < classes {
                (order[k] as f32, out[order[k]])
            } else {
                (-1.0, 0.0)
            };
            out[10 + k] = class;
            out[13 + k] = p;
        }
        order[0] as i32
    })
}
