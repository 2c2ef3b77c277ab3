#!/usr/bin/env python3
"""Make a mixed map with FP32 islands from an all-INT8 precision map.

    island_map.py ALL_INT8.map.json OUT.map.json

Sets every third quantizable layer (in the map's topological order), starting with the
second, to FP32, so each island sits between INT8 layers (INT8 -> FP32 -> INT8 -> INT8 ->
FP32 ...): the boundaries where the ort scheme dequantizes an INT8 region's uint8 output
and quantizes again after the FP32 layer. A search picks its FP32 layers by sensitivity,
which on these fixtures keeps them at the model's ends or not at all; this fixed pattern
puts islands in the middle of every fixture, so the export's Q/DQ placement at region
boundaries is checked on every model, not only where a search happens to put them.

The map keeps its quantization parameters (`layers[].activation`, `tensors`): a layer's
input and a requantized tensor have the same calibrated range whatever runs around it, and
`mpq export` recomputes the region plan from the precisions. Its `int8_region_ops` and
`result` fields are dropped: they described the all-INT8 map. mpq's prediction for this map
is therefore `mpq eval --precision OUT.map.json` (passed to ort_crosscheck.py as
--predicted), not a search result.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    layers = doc["layers"]
    if len(layers) < 3:
        print(f"error: {sys.argv[1]} has {len(layers)} layers; an FP32 island needs INT8 layers on both sides",
              file=sys.stderr)
        sys.exit(2)
    if any(l["precision"] != "int8" for l in layers):
        print(f"error: {sys.argv[1]} is not all-INT8", file=sys.stderr)
        sys.exit(2)
    for i, layer in enumerate(layers):
        if i % 3 == 1 and i < len(layers) - 1:      # never the last: an island has INT8 after it
            layer["precision"] = "fp32"
    for key in ("int8_region_ops", "result", "pareto", "trajectory", "budget_met"):
        doc.pop(key, None)
    doc["int8_layers"] = sum(l["precision"] == "int8" for l in layers)
    doc["strategy"] = "island_map.py"
    with open(sys.argv[2], "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    print(" ".join(l["precision"] for l in layers))


if __name__ == "__main__":
    main()
