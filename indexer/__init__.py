"""Git remote -> validated release specs. Imports ``manifests``, never ``port``."""
