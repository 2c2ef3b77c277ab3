# mpq: the two commands of the README.
#   make example   installs what is missing, builds, runs mpq on the bundled example
#   make test      runs the test suite
SWIFT ?= swift
DEB_PACKAGES = libgsl-dev libopenblas-dev

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

example: build
	.build/release/mpq inspect Examples/digits_cnn.onnx
	.build/release/mpq eval Examples/digits_cnn.onnx --data Examples/digits_holdout.npz

test: setup
	$(SWIFT) test

conformance: build
	.build/release/mpq conformance Tests/Fixtures/conformance/node
	.build/release/mpq conformance Tests/Fixtures/conformance/light

bench: setup
	$(SWIFT) run -c release mpq-bench all
