"""The only place where Port's domains meet.

``jobs`` gives the generic worker each domain's job handlers, after-hooks and periodic
tasks; ``server`` composes the web server (API, reconciler, in-process worker). The API
and the CLI call domain services and never import this package; ``port serve`` and
``port worker`` (port/serve.py) start what it builds.
"""
