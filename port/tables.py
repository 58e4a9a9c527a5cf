"""Every table of Port: importing this registers them all on one ``MetaData``.

Alembic and the tests use it, so a model module that is not imported here has no
migration and no test database table.
"""

from __future__ import annotations

from port.accounts import models as accounts
from port.apps import models as apps
from port.catalogue import models as catalogue
from port.deploy import models as deploy
from port.jobs import models as jobs
from port.orm import Base
from port.webhooks import models as webhooks

metadata = Base.metadata

__all__ = ["accounts", "apps", "catalogue", "deploy", "jobs", "metadata", "webhooks"]
