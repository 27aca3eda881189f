"""The operator command line: ``python -m appliance.ops`` (keys, campaign build/push/serve)."""
