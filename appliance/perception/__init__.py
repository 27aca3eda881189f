"""Perception: what the models say about a frame (person mask now; hands and pose later)."""
