"""Git remote -> validated release specs. Imports ``manifests``, never ``port``.

Entry point: :func:`indexer.scan.index_repo`. The decisions behind it are in README.md.
"""
