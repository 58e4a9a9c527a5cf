"""What one manifest file may be: its bytes, and the shape of its YAML.

A module of its own, without YAML, so that what only needs the numbers (the index
limits, the settings and so every `port` command) does not import a YAML library.
"""

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64  # real Arkitekt inspections nest about 15 deep
MAX_ALIASES = 100  # references to an already-built collection; real files use none
MAX_NODES = 1_000_000  # collections after expanding aliases
