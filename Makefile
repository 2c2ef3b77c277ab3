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

# The main job: which layers of the bundled digits CNN can run in INT8 within a 1-point
# budget, searched on the search split and validated on the holdout split.
example: build
	@mkdir -p out
	.build/release/mpq inspect Examples/digits_cnn.onnx
	.build/release/mpq eval Examples/digits_cnn.onnx --data Examples/digits_holdout.npz
	.build/release/mpq search Examples/digits_cnn.onnx \
	    --calibration Examples/digits_calib.npz --search Examples/digits_search.npz \
	    --holdout Examples/digits_holdout.npz --budget 1% --out out/digits_map.json
	.build/release/mpq eval Examples/digits_cnn.onnx --data Examples/digits_holdout.npz \
	    --precision out/digits_map.json --calibration Examples/digits_calib.npz

test: setup
	$(SWIFT) test --disable-swift-testing

conformance: build
	.build/release/mpq conformance Tests/Fixtures/conformance/node
	.build/release/mpq conformance Tests/Fixtures/conformance/light

bench: setup
	$(SWIFT) run -c release mpq-bench all
