// A hand-written loader for web/wasm (softnet's classifier and preprocessing built for
// wasm32-unknown-unknown with plain extern "C" exports; see web/wasm/src/lib.rs for the
// memory protocol). No bundler, no wasm-bindgen: the module imports nothing.

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const PREDICT_OUT = 16;

/** Fetches and instantiates the module; resolves to an object with the calls below. */
export async function loadSoftnet(url) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status} (build it with web/build.sh)`);
  }
  const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), {});
  const wasm = instance.exports;
  // The memory can grow on any call that allocates, which detaches old views: make views
  // afresh after every call.
  const bytes = () => new Uint8Array(wasm.memory.buffer);
  const message = () =>
    new TextDecoder().decode(bytes().subarray(wasm.message_ptr(), wasm.message_ptr() + wasm.message_len()));
  // Buffers that live as long as the module: the 28x28 image and the prediction.
  const imagePtr = wasm.alloc_buffer(PIXELS);
  const outPtr = wasm.alloc_buffer(PREDICT_OUT * 4);

  /** Copies `data` (a Uint8Array) into a fresh buffer, calls `f(ptr, len)`, frees it. */
  function withBuffer(data, f) {
    const ptr = wasm.alloc_buffer(data.length);
    try {
      bytes().set(data, ptr);
      return f(ptr, data.length);
    } finally {
      wasm.free_buffer(ptr, data.length);
    }
  }

  return {
    /** Loads a safetensors model into `slot`: { ok: true, description } or { ok: false, error }. */
    loadModel(slot, modelBytes) {
      const status = withBuffer(modelBytes, (ptr, len) => wasm.load_model(slot, ptr, len));
      return status === 0 ? { ok: true, description: message() } : { ok: false, error: message() };
    },

    /**
     * The 28x28 image (Uint8Array of 784, 0 = background) the models see for an RGBA
     * ImageData, or null when nothing is drawn. Same code as `softnet predict` on a PNG.
     */
    preprocess(imageData) {
      const status = withBuffer(imageData.data, (ptr) =>
        wasm.preprocess(ptr, imageData.width, imageData.height, imagePtr));
      if (status === 2) throw new Error(message());
      return status === 0 ? bytes().slice(imagePtr, imagePtr + PIXELS) : null;
    },

    /** Classifies a 28x28 image: { digit, probabilities: [10], top3: [[class, p] x3] }. */
    predict(slot, image) {
      bytes().set(image, imagePtr);
      const digit = wasm.predict(slot, imagePtr, outPtr);
      if (digit < 0) throw new Error(message());
      const out = new Float32Array(wasm.memory.buffer, outPtr, PREDICT_OUT).slice();
      const top3 = [0, 1, 2].filter((k) => out[10 + k] >= 0).map((k) => [out[10 + k], out[13 + k]]);
      return { digit, probabilities: Array.from(out.subarray(0, 10)), top3 };
    },
  };
}
