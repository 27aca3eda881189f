"""The built-in experiences: plug-ins like any other (entry points in pyproject.toml, group ``oivis.experiences``).

Invariants: each module here imports ``appliance.experience.api`` (and its own
package) only, never the kiosk core: what the built-ins need, the API gives, so a
third party can do whatever they do.
"""
