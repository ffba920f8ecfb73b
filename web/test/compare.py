#!/usr/bin/env python3
"""Compares what the digit pad showed (results.json from check.cjs) with `softnet predict` on
the PNGs of the same canvases (OUT_DIR/predict-MODEL.txt): the same class, the same top three
classes, and probabilities equal to the 4 decimals `softnet predict` prints (|page - cli| at
most half a unit of the 4th decimal, plus 1e-6 for the f32 -> decimal rounding).
The full-precision check (1e-5, and the 28x28 images byte for byte) is tests/it/preprocess.rs's
`digit_pad_matches_the_library`.

Usage: compare.py OUT_DIR     Exit: 0 all agree, 1 otherwise.
"""
import json
import os
import sys

TOL = 0.5e-4 + 1e-6


def main():
    out = sys.argv[1]
    results = json.load(open(os.path.join(out, "results.json")))
    models = sorted(results[0]["models"])
    failures, checked = [], 0
    for m in models:
        cli = {}
        for line in open(os.path.join(out, f"predict-{m}.txt")):
            path, cls, *top = line.split()
            cli[os.path.basename(path)] = (int(cls), [(int(c), float(p)) for c, p in (t.split(":") for t in top)])
        for r in results:
            name = os.path.basename(r["png"])
            page = r["models"][m]
            if name not in cli:
                failures.append(f"{m} {name}: softnet predict printed nothing for it")
                continue
            cls, top = cli[name]
            want = [(int(c), p) for c, p in page["top3"]]
            ok = cls == page["digit"] and [c for c, _ in top] == [c for c, _ in want] and all(
                abs(p - q) <= TOL for (_, p), (_, q) in zip(top, want))
            checked += 1
            if not ok:
                failures.append(f"{m} {name}: page {page['digit']} {want}, softnet predict {cls} {top}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print(f"{'FAIL' if failures else 'ok'}: page and softnet predict agree on "
          f"{checked - len(failures)}/{checked} (model, drawing) pairs ({', '.join(models)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
