# mpq: the two commands of the README.
#   make example   installs what is missing, builds, runs mpq on the bundled example
#   make test      runs the test suite
SWIFT ?= swift
DEB_PACKAGES = libgsl-dev libopenblas-dev zlib1g-dev

.PHONY: setup build example test bench conformance

# Installs the C libraries mpq links (Debian/Ubuntu), only when missing.
setup:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

build: setup
	$(SWIFT) build -c release --product mpq

# The main job: which layers of the bundled YOLO-style detector can run in INT8 while
# COCO mAP@[.5:.95] loses at most 1 point? All-INT8 loses about 4 points, so the search
# keeps the layer that costs it in FP32; the answer is validated on the holdout split,
# its speed printed, and the map exported as a QDQ model ONNX Runtime fuses
# (QLinearConv, QLinearSigmoid, ...).
DET = Tests/Fixtures/detection/shapes_det
example: build
	@mkdir -p out
	.build/release/mpq inspect $(DET).onnx
	.build/release/mpq eval $(DET).onnx --data $(DET)_holdout.npz --metric map50_95 --detection-format yolo
	.build/release/mpq search $(DET).onnx --metric map50_95 --detection-format yolo --budget 1% --strategy greedy \
	    --calibration $(DET)_calib.npz --search $(DET)_search.npz --holdout $(DET)_holdout.npz \
	    --out out/shapes_det_map.json
	.build/release/mpq export $(DET).onnx --precision out/shapes_det_map.json --format qdq --out out/shapes_det.int8.onnx

# Release build with testable imports: the suite runs ~7x faster than in debug (472 -> 68 s
# here; debug Swift and -O0 C kernels dominated), and tools/crosscheck/run.sh reuses the same
# build (same flags) instead of building release a second time.
test: setup
	$(SWIFT) test -c release -Xswiftc -enable-testing --disable-swift-testing

conformance: build
	.build/release/mpq conformance Tests/Fixtures/conformance/node
	.build/release/mpq conformance Tests/Fixtures/conformance/light

bench: setup
	$(SWIFT) run -c release mpq-bench all
