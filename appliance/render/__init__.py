"""The compositor: puts the cut-out shopper into a scene's world, at screen resolution."""

from appliance.render.compositor import Compositor, Layer

__all__ = ["Compositor", "Layer"]
