"""Who calls Port: users, their API tokens, and JWTs from an identity provider.

``models`` (tables), ``service`` (create, list, authenticate, revoke), ``jwt`` (verify
tokens of an external identity provider), ``bearer`` (one ``Authorization`` header to a
``Principal``). The API and the command line call these; neither holds auth logic.
"""
