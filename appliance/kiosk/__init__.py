"""The kiosk: one render loop that owns pygame, and the scenes it moves between."""
