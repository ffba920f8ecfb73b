// The strokes of tests/fixtures/drawn/make_digits.py (the same point lists, slant and
// placement, without its random jitter), on a 200x200 canvas, for replaying as pointer
// strokes on the digit pad.

function arc(cx, cy, rx, ry, a0, a1, n = 24) {
  const pts = [];
  for (let i = 0; i <= n; i++) {
    const a = ((a0 + ((a1 - a0) * i) / n) * Math.PI) / 180;
    pts.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  }
  return pts;
}

function line(p, q, n = 8) {
  const pts = [];
  for (let i = 0; i <= n; i++) pts.push([p[0] + ((q[0] - p[0]) * i) / n, p[1] + ((q[1] - p[1]) * i) / n]);
  return pts;
}

const slant = (pts, k, cy = 100) => pts.map(([x, y]) => [x - k * (y - cy), y]);

// name: [label, strokes, slant, dx, dy, scale]; the offsets vary placement and size as the
// fixtures do.
const DIGITS = {
  zero: [0, [arc(100, 100, 42, 68, -90, 275, 40)], 0.08, -12, 6, 0.95],
  one: [1, [line([82, 52], [106, 30], 4), line([106, 30], [100, 172], 12)], 0.0, 15, -8, 0.9],
  two: [2, [arc(100, 72, 40, 36, 195, 380, 20).concat(line([139, 84], [60, 168], 10)),
    line([60, 168], [148, 166], 8)], 0.0, -5, 10, 0.85],
  three: [3, [arc(98, 66, 38, 32, 200, 450, 24), arc(98, 134, 44, 38, -90, 160, 24)], 0.05, 8, 0, 1.0],
  four: [4, [line([118, 30], [52, 124], 10).concat(line([52, 124], [152, 122], 8)),
    line([126, 70], [124, 176], 10)], 0.0, -10, -10, 0.9],
  five: [5, [line([146, 36], [74, 36], 6).concat(line([74, 36], [68, 96], 6),
    arc(100, 124, 44, 42, -135, 150, 24))], 0.06, 12, 8, 0.8],
  six: [6, [arc(150, 110, 80, 82, 235, 180, 10).concat(arc(104, 132, 38, 38, 180, 540, 32))], 0.05, 0, -5, 0.95],
  seven: [7, [line([52, 40], [150, 38], 10).concat(line([150, 38], [88, 174], 14))], 0.0, -18, 5, 1.0],
  eight: [8, [arc(100, 64, 28, 32, 90, 450, 28), arc(100, 134, 34, 38, -90, 270, 32)], 0.15, 5, 12, 0.85],
  nine: [9, [arc(100, 70, 36, 34, 0, 360, 28), line([136, 70], [122, 174], 12)], 0.1, 10, -12, 0.9],
};

/** [{ name, label, strokes: [[[x, y], ...], ...] }] in 0..200 canvas units. */
function digits() {
  return Object.entries(DIGITS).map(([name, [label, strokes, k, dx, dy, s]]) => ({
    name,
    label,
    strokes: strokes.map((pts) => slant(pts, k).map(([x, y]) => [100 + (x - 100) * s + dx, 100 + (y - 100) * s + dy])),
  }));
}

module.exports = { digits };
