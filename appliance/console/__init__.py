"""The operator console: a web application on the fleet's PostgreSQL database."""
