# The technician's workflow, included from the Makefile (it uses $(PY), $(INSTALLED) and the
# `models` / `content` targets defined there):
#   make ca  →  make provision DEVICE_ID=… SITE=… BROKER=…  →  make package  →
#   make flash IMAGE=… DEVICE=/dev/sdX  →  make install HOST=user@board DEVICE_ID=…  →  make doctor HOST=…
# Everything generated lands in provisioning/out/ (git-ignored) and dist/.

CA_DIR ?= provisioning/out/ca
OPERATORS_CA_DIR ?= provisioning/out/operators-ca
OPERATORS_DIR ?= provisioning/out/operators
NAME ?=
KEYS_DIR ?= provisioning/out/operator-keys
DEVICES_DIR ?= provisioning/out/devices
DIST ?= dist
ARCH ?= arm64
BOARD_PYTHON ?= 3.11
RKNN_WHEEL ?=
WHEELHOUSE ?=
APP_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' appliance/__init__.py)
DEB ?= $(DIST)/oivis-appliance_$(APP_VERSION)_$(ARCH).deb
BUNDLE = $(DEVICES_DIR)/$(DEVICE_ID)
DEVICE_ID ?=
SITE ?=
BROKER ?=
FORCE ?=
HOST ?=
IMAGE ?=
DEVICE ?=
YES ?=
DRY_RUN ?=
CONFIG ?=
PRINT_QUEUE ?= booth
PRINTER_URI ?=
PRINTER_DRIVER ?=
PRINT_MEDIA ?= 4x6

.PHONY: technician-help ca operator-ca operator-cert keys csr sign provision package check-arm64 arm64-host install flash doctor printer

technician-help:
	@echo "make ca                       the development fleet CA in $(CA_DIR) (kept when it exists)"
	@echo "make operator-ca              the operators' CA in $(OPERATORS_CA_DIR) (the broker's second listener trusts it)"
	@echo "make operator-cert NAME=operator-alice   an operator's (or NAME=ingest: a service's) TLS identity in $(OPERATORS_DIR)"
	@echo "make keys                     an operator campaign-signing key pair in $(KEYS_DIR)"
	@echo "make provision DEVICE_ID=mall-01-screen-3 SITE=mall-01 BROKER=mqtt.example.net:8883 [FORCE=1]"
	@echo "                              the device's identity bundle in $(DEVICES_DIR)/DEVICE_ID (csr + sign)"
	@echo "make package [ARCH=arm64] [BOARD_PYTHON=3.11] [RKNN_WHEEL=path.whl] [WHEELHOUSE=dir]"
	@echo "make check-arm64              (as root, 6-15 min) the arm64 .deb installed in a bookworm arm64 root under qemu,"
	@echo "                              its analyze --json against this machine's (provisioning/arm64/check.sh)"
	@echo "make flash IMAGE=os.img.xz DEVICE=/dev/sdX [YES=1]   (as root)"
	@echo "make install HOST=user@board DEVICE_ID=... [DRY_RUN=1]"
	@echo "make doctor [HOST=user@board]  the health checks, here or on the board"
	@echo "make printer PRINTER_URI=usb://... PRINTER_DRIVER=... [PRINT_QUEUE=booth] [PRINT_MEDIA=4x6]   the booth's CUPS queue (root;"
	@echo "                              python -m appliance.printing devices / drivers list the URIs and drivers)"

ca: $(INSTALLED)
	$(PY) -m appliance.tools.provision ca --dir $(CA_DIR)

operator-ca: $(INSTALLED)
	$(PY) -m appliance.tools.provision ca --dir $(OPERATORS_CA_DIR) --name "OIVIS operators CA"

operator-cert: operator-ca
	@test -n "$(NAME)" || { echo "usage: make operator-cert NAME=operator-alice|ingest|console [FORCE=1]" >&2; exit 2; }
	$(PY) -m appliance.tools.provision service --name "$(NAME)" --ca-dir $(OPERATORS_CA_DIR) \
	    --out $(OPERATORS_DIR) $(if $(filter 1,$(FORCE)),--force)

keys: $(INSTALLED)
	$(PY) -m appliance.ops keygen --out $(KEYS_DIR)

# The key is generated for the device into its bundle and never leaves it; only the CSR goes to the CA.
define csr_recipe
@test -n "$(DEVICE_ID)" -a -n "$(SITE)" -a -n "$(BROKER)" || \
    { echo "usage: make provision DEVICE_ID=... SITE=... BROKER=host:port [FORCE=1] [KEYS_DIR=dir]" >&2; exit 2; }
$(PY) -m appliance.tools.provision request --device-id "$(DEVICE_ID)" --site "$(SITE)" \
    --broker "$(BROKER)" --out "$(BUNDLE)" --keys-dir "$(KEYS_DIR)" $(if $(filter 1,$(FORCE)),--force)
endef

# The CA's step; with a production PKI, hand it $(BUNDLE)/device.csr and put the answer in tls/device.pem.
define sign_recipe
@test -n "$(DEVICE_ID)" || { echo "usage: make sign DEVICE_ID=..." >&2; exit 2; }
$(PY) -m appliance.tools.provision sign --csr "$(BUNDLE)/device.csr" --ca-dir "$(CA_DIR)" \
    --out "$(BUNDLE)/tls/device.pem"
install -m 0644 "$(CA_DIR)/ca.pem" "$(BUNDLE)/tls/ca.pem"
endef

csr: $(INSTALLED)
	$(csr_recipe)

sign: $(INSTALLED)
	$(sign_recipe)

provision: ca
	$(csr_recipe)
	$(sign_recipe)

package: models content
	$(PY) -m appliance.tools.package --arch $(ARCH) --python $(BOARD_PYTHON) --out $(DIST) \
	    $(if $(WHEELHOUSE),--wheelhouse "$(WHEELHOUSE)") $(if $(RKNN_WHEEL),--rknn-wheel "$(RKNN_WHEEL)")

# The arm64 package proven here under qemu-user emulation (provisioning/arm64/check.sh): the root is cached in
# $(ARM64_DIR) (git-ignored), every run installs the .deb afresh and compares `analyze` with this machine's.
ARM64_DIR ?= .arm64
ARM64_MEDIA ?= portrait_white_bg.png thumb_up.jpg victory_closeup.jpg face_group.jpg pose_sitting.jpg
# Only check.sh needs root: under sudo the package (and setup, models, content) is built as the user who ran it.
check-arm64: arm64-host
	$(if $(SUDO_USER),sudo -u "$(SUDO_USER)" OIVIS_TEST_MEDIA="$(OIVIS_TEST_MEDIA)") $(MAKE) package ARCH=arm64
	DEB="$(DIST)/oivis-appliance_$(APP_VERSION)_arm64.deb" MEDIA="$(MEDIA)" PY="$(PY)" ARM64_DIR="$(ARM64_DIR)" \
	    ARM64_MEDIA="$(ARM64_MEDIA)" sh provisioning/arm64/check.sh

arm64-host:
	@[ "$$(id -u)" = 0 ] || { echo "check-arm64 needs root (binfmt_misc, mmdebstrap, mount, chroot): sudo make check-arm64" >&2; exit 2; }
	@EXTRA_PACKAGES="qemu-user-static:/usr/bin/qemu-aarch64-static binfmt-support:/usr/sbin/update-binfmts mmdebstrap:/usr/bin/mmdebstrap" \
	    sh provisioning/check-system.sh

install: $(INSTALLED)
	@test -n "$(HOST)" -a -n "$(DEVICE_ID)" || \
	    { echo "usage: make install HOST=user@board DEVICE_ID=... [DRY_RUN=1]" >&2; exit 2; }
	$(PY) -m appliance.tools.remote install --host "$(HOST)" --deb "$(DEB)" --bundle "$(BUNDLE)" \
	    $(if $(DRY_RUN),--dry-run)

flash: $(INSTALLED)
	@test -n "$(IMAGE)" -a -n "$(DEVICE)" || { echo "usage: make flash IMAGE=os.img[.xz] DEVICE=/dev/sdX" >&2; exit 2; }
	$(PY) -m appliance.tools.flash "$(IMAGE)" "$(DEVICE)" $(if $(filter 1,$(YES)),--yes)

printer: $(INSTALLED)
	@test -n "$(PRINTER_URI)" -a -n "$(PRINTER_DRIVER)" || { echo "usage: make printer PRINTER_URI=<device URI> PRINTER_DRIVER=<driver> [PRINT_QUEUE=booth] [PRINT_MEDIA=4x6] (python -m appliance.printing devices / drivers list them)" >&2; exit 2; }
	$(PY) -m appliance.printing setup --queue "$(PRINT_QUEUE)" --uri "$(PRINTER_URI)" --driver "$(PRINTER_DRIVER)" --media "$(PRINT_MEDIA)" --default

doctor: $(INSTALLED)
	$(if $(HOST),$(PY) -m appliance.tools.remote doctor --host "$(HOST)" $(if $(DRY_RUN),--dry-run),\
	    $(PY) -m appliance doctor $(if $(CONFIG),--config "$(CONFIG)"))
