"""StableNew: a local orchestrator for Stable Diffusion over the AUTOMATIC1111 WebUI API."""

__version__ = "0.1.0"
