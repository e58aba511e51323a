"""The reference backend: an A1111-compatible HTTP server that misbehaves on demand."""
