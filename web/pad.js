// The digit pad: pointer strokes on #pad, then softnet's preprocessing and prediction (in
// WebAssembly, see softnet.js) after every change. Results are also left in the DOM as data
// attributes (#seen's data-pixels, #digit's data-class, #top3's data-top3, body's
// data-updates) for .ci/steps/38-digit-pad.sh to read.
import { loadSoftnet } from "./softnet.js";

const MODELS = [
  { id: "softmax", name: "Softmax regression (784-10)", file: "models/softmax.safetensors" },
  { id: "mlp", name: "MLP (784-256-10)", file: "models/mlp.safetensors" },
  { id: "cnn", name: "CNN (2 convolutions)", file: "models/cnn.safetensors" },
];
const BUILD_HINT = "web/build.sh trains it";
// Stroke width on the 448-pixel canvas: MNIST's 2 to 3 pixels of 20 for a digit drawn 300 px tall.
const INK_WIDTH = 36;

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen");
const seenCtx = seen.getContext("2d");
const status = document.getElementById("status");
const digitOut = document.getElementById("digit");
const top3Out = document.getElementById("top3");

let softnet = null;
let slot = -1; // the chosen model's slot, -1 when none is loaded
let updates = 0;

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function clearPad() {
  // Opaque white: the PNG a test saves from this canvas has the very pixels getImageData gives.
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  update();
}

function position(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
}

function segment([x0, y0], [x1, y1]) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = INK_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

let stroke = null; // { id, last } while a pointer is down
let pending = false;
let cost = 0; // milliseconds the last update took

// While a stroke goes on, recompute at most once a frame, and less often when a model is slow
// (the CNN), so the ink keeps up with the pointer; a stroke's end recomputes at once.
function schedule() {
  if (!pending) {
    pending = true;
    setTimeout(() => requestAnimationFrame(() => {
      pending = false;
      update();
    }), Math.max(0, 2 * cost - 16));
  }
}

pad.addEventListener("pointerdown", (e) => {
  if (e.pointerType === "mouse" && e.button !== 0) return;
  e.preventDefault();
  try {
    pad.setPointerCapture(e.pointerId);
  } catch {
    // Synthetic events have no active pointer to capture; drawing works without it.
  }
  const p = position(e);
  stroke = { id: e.pointerId, last: p };
  segment(p, p);
  schedule();
});
pad.addEventListener("pointermove", (e) => {
  if (!stroke || e.pointerId !== stroke.id) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of events.length ? events : [e]) {
    const p = position(ev);
    segment(stroke.last, p);
    stroke.last = p;
  }
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, (e) => {
    if (!stroke || e.pointerId !== stroke.id) return;
    stroke = null;
    update();
  });
}
document.getElementById("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" || e.key === "Delete") clearPad();
});

function showSeen(image) {
  const data = seenCtx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = image ? image[i] : 0;
    data.data.set([v, v, v, 255], 4 * i);
  }
  seenCtx.putImageData(data, 0, 0);
  seen.dataset.pixels = image ? Array.from(image).join(",") : "";
}

function showPrediction(result) {
  top3Out.replaceChildren();
  if (!result) {
    digitOut.textContent = "\u2013";
    digitOut.dataset.class = "";
    top3Out.dataset.top3 = "[]";
    return;
  }
  digitOut.textContent = String(result.digit);
  digitOut.dataset.class = String(result.digit);
  top3Out.dataset.top3 = JSON.stringify(result.top3);
  for (const [c, p] of result.top3) {
    const li = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.append(document.createElement("span"));
    bar.firstChild.style.width = `${(100 * p).toFixed(1)}%`;
    const d = document.createElement("b");
    d.textContent = String(c);
    const n = document.createElement("span");
    n.className = "num";
    n.textContent = `${(100 * p).toFixed(2)}%`;
    li.append(d, bar, n);
    top3Out.append(li);
  }
}

function update() {
  const start = performance.now();
  let image = null;
  let result = null;
  if (softnet) {
    try {
      image = softnet.preprocess(ctx.getImageData(0, 0, pad.width, pad.height));
      if (image && slot >= 0) result = softnet.predict(slot, image);
    } catch (err) {
      say(`error: ${err.message}`, true);
    }
  }
  showSeen(image);
  showPrediction(result);
  cost = performance.now() - start;
  document.body.dataset.updates = String(++updates);
}

async function loadModels() {
  const field = document.getElementById("models");
  const missing = [];
  let first = -1;
  for (const [i, m] of MODELS.entries()) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "model";
    radio.value = m.id;
    radio.id = `model-${m.id}`;
    radio.disabled = true;
    label.append(radio, ` ${m.name}`);
    field.append(label);
    let problem = null;
    try {
      const response = await fetch(m.file);
      if (!response.ok) {
        problem = `missing (${m.file}: HTTP ${response.status}; ${BUILD_HINT})`;
      } else {
        const loaded = softnet.loadModel(i, new Uint8Array(await response.arrayBuffer()));
        if (loaded.ok) {
          label.title = loaded.description;
          radio.disabled = false;
          radio.addEventListener("change", () => {
            slot = i;
            update();
          });
          if (first < 0) first = i;
        } else {
          problem = `unusable (${m.file}: ${loaded.error})`;
        }
      }
    } catch (err) {
      problem = `missing (${m.file}: ${err.message}; ${BUILD_HINT})`;
    }
    if (problem) {
      label.classList.add("missing");
      label.append(` \u2014 ${problem}`);
      missing.push(`${m.name}: ${problem}`);
    }
  }
  if (first >= 0) {
    slot = first;
    document.getElementById(`model-${MODELS[first].id}`).checked = true;
  }
  return missing;
}

async function main() {
  clearPad();
  try {
    softnet = await loadSoftnet("softnet_web.wasm");
  } catch (err) {
    say(`The classifier could not be loaded: ${err.message}`, true);
    return;
  }
  const missing = await loadModels();
  if (slot < 0) {
    say(`No model could be loaded. ${missing.join(" ")}`, true);
  } else if (missing.length) {
    say(`Some models are missing: ${missing.join(" ")}`, true);
  } else {
    say("Draw a digit in the box, with the mouse or a finger.");
  }
  status.dataset.ready = "1";
  update();
}

main();
