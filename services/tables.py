"""Every service's tables on one metadata (composition root): what the migrations must build,
and what tests clear between tests. Services declare their tables on ``shared.models.Base``;
nothing in shared needs to know which services there are."""

from __future__ import annotations

from services.analytics import models as _analytics  # noqa: F401
from services.handoff import models as _handoff  # noqa: F401
from services.intake import models as _intake  # noqa: F401
from services.routing import models as _routing  # noqa: F401
from services.scoring import models as _scoring  # noqa: F401
from services.sla_monitor import models as _sla_monitor  # noqa: F401
from services.webhooks import models as _webhooks  # noqa: F401
from shared.cosign import models as _cosigned  # noqa: F401
from shared.models import Base

metadata = Base.metadata
