"""``textvae demo``: a local page over a trained model (interpolate, map, sample and reconstruct, respond, traverse).
``app`` holds the JSON endpoints (callable without a server), ``server`` the standard-library HTTP server, and
``static/`` the page (package data, no external assets)."""

from .app import Decoding, DemoApp, LatentMap, Limits, cached_latent_map, map_cache_path
from .server import DemoServer, serving

__all__ = ["Decoding", "DemoApp", "DemoServer", "LatentMap", "Limits", "cached_latent_map", "map_cache_path", "serving"]
