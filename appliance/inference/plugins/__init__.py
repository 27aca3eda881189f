"""Inference backend plugins, discovered by appliance.inference.backend.Registry."""
