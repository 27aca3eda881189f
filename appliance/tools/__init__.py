"""The technician's host-side tools, driven by provisioning/technician.mk: run on a laptop, not by the daemon.

provision (the device CA, identities and per-device bundles), package (the board's
.deb with its locked wheelhouse), flash (an image onto a removable disk, with the
refusals that keep a system disk safe), remote (install over ssh and the remote doctor).
Invariant: a leaf of the layers — nothing of the device runtime (appliance.service,
the kiosk, the fleet side, the composition root) imports this package.
"""
