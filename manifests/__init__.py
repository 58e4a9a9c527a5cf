"""Manifest formats: Port's own ``port.yaml`` and the Arkitekt deployment files."""
