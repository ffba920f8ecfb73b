//! softnet's classifier on a Cortex-M4F with neither `std` nor a heap: the int8 model and a
//! few MNIST test images are baked into flash, each image is predicted, and the results go
//! out over semihosting, one line each:
//!
//! ```text
//! prediction INDEX CLASS CONFIDENCE_x10000 LABEL
//! ```
//!
//! then the number correct, the SysTick ticks spent predicting and the peak stack use, and
//! the program ends through semihosting's exit (status 0, or 1 on any failure). Built and run
//! under QEMU's `mps2-an386` board by `.ci/steps/35-firmware.sh`, which compares the lines
//! with `softnet predict --stdin` on the same images. By hand, from `embedded/`:
//!
//! ```text
//! SOFTNET_FW_MODEL=m8.safetensors SOFTNET_FW_IMAGES=images.bin SOFTNET_FW_LABELS=labels.bin \
//!     cargo run --release
//! ```
//!
//! (`cargo run` starts QEMU, as `.cargo/config.toml` says; the images are raw 784-byte
//! records, the labels one byte each.)

#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use softnet::ClassifierRef;

/// One 28x28 image, one byte a pixel, 0 = background (MNIST's layout).
const PIXELS: usize = 784;

/// The core clock SysTick counts on `mps2-an386` (QEMU's board runs it at 25 MHz): on such a
/// chip the ticks are cycles; under QEMU they are its virtual time (see the CI step).
const SYSTICK_HZ: u32 = 25_000_000;

/// Each image is predicted this many times for the timing, so that one tick's resolution is
/// small beside the interval measured.
const REPEATS: u32 = 8;

/// f32 values set aside for the classifier's scratch: the int8 784-10 model needs none, a
/// 784-32-10 MLP 64; a model that needs more is refused with a message.
const SCRATCH: usize = 64;

/// The int8 model file (`softnet quantize`), as written: `ClassifierRef` reads it in place
/// at any alignment.
static MODEL: &[u8] = include_bytes!(env!("SOFTNET_FW_MODEL"));
/// Test images, 784 bytes each, back to back.
static IMAGES: &[u8] = include_bytes!(env!("SOFTNET_FW_IMAGES"));
/// One label byte per image.
static LABELS: &[u8] = include_bytes!(env!("SOFTNET_FW_LABELS"));

/// Reports the failure and ends QEMU with status 1.
fn fail(what: core::fmt::Arguments) -> ! {
    hprintln!("error: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    // Only reached on a debugger that ignores the exit request.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[entry]
fn main() -> ! {
    let classifier = match ClassifierRef::parse(MODEL) {
        Ok(c) => c,
        Err(e) => fail(format_args!("model: {e}")),
    };
    let Some(scratch) = cortex_m::singleton!(: [f32; SCRATCH] = [0.0; SCRATCH]) else {
        fail(format_args!("scratch taken twice"))
    };
    let scratch = match scratch.get_mut(..classifier.scratch_len()) {
        Some(s) => s,
        None => fail(format_args!(
            "model: needs {} f32 of scratch, the firmware has {SCRATCH}",
            classifier.scratch_len()
        )),
    };
    let (images, rest) = IMAGES.as_chunks::<PIXELS>();
    if !rest.is_empty() || images.len() != LABELS.len() {
        fail(format_args!(
            "{} bytes of images for {} labels",
            IMAGES.len(),
            LABELS.len()
        ));
    }
    hprintln!(
        "softnet firmware: model {} bytes, {} images, scratch {} f32",
        MODEL.len(),
        images.len(),
        scratch.len()
    );

    let Some(mut core) = cortex_m::Peripherals::take() else {
        fail(format_args!("core peripherals taken twice"))
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(0x00ff_ffff);
    core.SYST.clear_current();
    core.SYST.enable_counter();

    let mut ticks: u64 = 0;
    let mut correct = 0;
    for (index, (image, &label)) in images.iter().zip(LABELS).enumerate() {
        let start = SYST::get_current();
        let mut result = classifier.predict(image, scratch);
        for _ in 1..REPEATS {
            // `predict` is pure: without the black box the repeats could fold into one.
            result = classifier.predict(core::hint::black_box(image), scratch);
        }
        let end = SYST::get_current();
        // SysTick counts down through 24 bits; one image's repeats take far less than a wrap.
        ticks += u64::from(start.wrapping_sub(end) & 0x00ff_ffff);
        let (class, confidence) = result;
        correct += usize::from(class == usize::from(label));
        // Integers only: float formatting would cost flash for no information.
        let confidence = (confidence * 10_000.0 + 0.5) as u32;
        hprintln!("prediction {} {} {} {}", index, class, confidence, label);
    }
    let predictions = images.len() as u64 * u64::from(REPEATS);
    hprintln!("correct {} of {}", correct, images.len());
    hprintln!(
        "timing {} predictions {} ticks at {} Hz: {} ticks per prediction",
        predictions,
        ticks,
        SYSTICK_HZ,
        ticks / predictions
    );
    hprintln!("stack peak {} bytes", stack_peak());
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Bytes of stack used so far: cortex-m-rt's `paint-stack` filled the stack with
/// `STACK_PAINT_VALUE` before `main`; the lowest word that no longer holds it is the deepest
/// the stack has reached.
fn stack_peak() -> usize {
    extern "C" {
        // Lowest and one past the highest address of the stack (cortex-m-rt's link.x).
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let bottom = core::ptr::addr_of!(_stack_end);
    let top = core::ptr::addr_of!(_stack_start);
    let mut word = bottom;
    while word < top {
        // SAFETY: `word` is 4-aligned (link.x asserts `_stack_end % 4 == 0`) and lies in
        // `_stack_end.._stack_start`, RAM that is ours; volatile, as the compiler cannot see
        // the stack's writes through these symbols.
        if unsafe { word.read_volatile() } != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        word = word.wrapping_add(1);
    }
    top as usize - word as usize
}

/// A fault ends the run with a failure instead of hanging QEMU until its timeout.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", frame.pc()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panicked: {info}"))
}
