"""The operator console: a web application on the fleet's PostgreSQL database (``python -m appliance.console``).

Brands' operators see their screens (from ingest's device registry), send them commands, upload, sign and push
campaigns, and read what shoppers did (SQL over ingest's events); shoppers reach only the share pages
(``/p/<photo_id>``).  It sits above the operator tools (``appliance.ops``) and nothing on a device imports it.
"""
