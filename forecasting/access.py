"""Who may do what on the forecast pages and in their admin: the twins' roles (``twins.roles``).

Seeing forecasts needs the permission to view a patient's twin (nurse, clinician, admin);
asking for a forecast now needs the triage permission (those who act on the ward: nurse,
clinician, admin). No permission of its own, so the role groups need no new migration.
"""

from __future__ import annotations

from twins import roles

VIEW = roles.VIEW
FORECAST_NOW = roles.TRIAGE
