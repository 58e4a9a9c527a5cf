"""Environment variables a Setup gives its Pods: what a name and a value may be.

Shared by plain variables (``Setup.env``, shown to whoever sees the Setup) and secret
ones (``port.deploy.secrets``, never shown), so both refuse the same things.
"""

from __future__ import annotations

import re

from port.errors import InvalidInput

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENV_MAX_ITEMS = 100
ENV_MAX_VALUE = 4096
RESERVED_ENV_PREFIX = "PORT_"  # Port's own variables: PORT_SETUP_ID, PORT_POD_ID, ...


def check_variable(name: str, value: object, what: str = "env") -> None:
    """INVALID_INPUT (on field ``what``) unless ``name=value`` may be given to a Pod."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise InvalidInput(
            f"{what}: {str(name)[:130]!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            field=what,
        )
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        raise InvalidInput(
            f"{what}: {name} is reserved (PORT_* variables are set by Port)", field=what
        )
    if not isinstance(value, str) or len(value) > ENV_MAX_VALUE or "\x00" in value:
        raise InvalidInput(
            f"{what}: {name} must be a string of at most {ENV_MAX_VALUE} characters",
            field=what,
        )
