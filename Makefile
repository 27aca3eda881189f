# OIVIS Edge — developer and technician entry points.  `make run` and `make test`
# bootstrap everything they need (virtualenv, packages, models, default content).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
OIVIS_TEST_MEDIA ?=
RUN_ARGS ?=

.PHONY: help setup models content run test bench clean

help:
	@echo "make run      bring up the kiosk (windowed; the bundled demo source when there is no camera)"
	@echo "make test     run the test suite (set OIVIS_TEST_MEDIA=../shared/devset for the media cases)"
	@echo "make setup    create $(VENV) with everything installed (idempotent)"
	@echo "make models   fetch the pinned model files and verify their checksums"
	@echo "make bench    per-stage timings on BENCH_SOURCE (default: the devset kiosk video)"

$(INSTALLED): pyproject.toml
	@PYTHON=$(PYTHON) sh provisioning/check-system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,demo]'
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

test: models content
	OIVIS_TEST_MEDIA=$(OIVIS_TEST_MEDIA) SDL_VIDEODRIVER=dummy $(PY) -m pytest

BENCH_SOURCE ?= ../shared/devset/kiosk_fist_thumbup_720p.mp4
bench: models content
	$(PY) -m appliance bench $(BENCH_SOURCE) --frames 300

clean:
	rm -rf $(VENV) models/cache content/default/*.png content/default/*.mp4
