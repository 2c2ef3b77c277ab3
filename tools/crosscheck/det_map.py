#!/usr/bin/env python3
"""mAP of an exported detection QDQ model under ONNX Runtime (pycocotools, the
post-processing of docs/detection-format.md), against mpq's own scores of the same map.

    det_map.py --qdq M.qdq.onnx --data holdout.npz --layout yolov8 --mpq-map50 X --mpq-map50-95 Y

Prints one summary line; exit 1 when either mAP differs from mpq's by more than 0.05 point.
Needs onnx, onnxruntime, numpy and pycocotools.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from generate import ort_run  # noqa: E402
from generate_detection import coco_map, postprocess  # noqa: E402
from generate_detection_layouts import post_2out, post_v8  # noqa: E402

TOLERANCE = 0.05   # points


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdq", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--layout", choices=["yolo", "yolov8", "boxes-scores"], required=True)
    ap.add_argument("--mpq-map50", type=float, required=True)
    ap.add_argument("--mpq-map50-95", type=float, required=True)
    ap.add_argument("--name", default="det")
    a = ap.parse_args()
    d = np.load(a.data)
    res = ort_run(a.qdq, {"images": d["images"]})
    if a.layout == "yolo":
        items, post = next(iter(res.values())), postprocess
    elif a.layout == "yolov8":
        items, post = next(iter(res.values())), post_v8
    else:
        items, post = list(zip(res["boxes"], res["scores"])), post_2out
    r = coco_map(items, d["gt_boxes"], d["gt_classes"], post=post)
    ok = abs(100 * r["map50"] - a.mpq_map50) <= TOLERANCE and abs(100 * r["map50_95"] - a.mpq_map50_95) <= TOLERANCE
    print("%-17s ORT+pycocotools map50 %.2f map50_95 %.2f, mpq %.2f / %.2f: %s" % (
        a.name, 100 * r["map50"], 100 * r["map50_95"], a.mpq_map50, a.mpq_map50_95, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
