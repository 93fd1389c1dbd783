"""The AAS session identity of an encounter, from `[aas]` and the encounter's EHR context."""

from __future__ import annotations

from edge_recorder.config.services.aas import AasConfig
from edge_recorder.uplinks.base import SessionIdentity


def aas_identity(
    aas: AasConfig,
    correlation_id: str,
    *,
    external_user_id: str | None = None,
    ehr_instance_id: str | None = None,
) -> SessionIdentity:
    """Identity from `[aas]`; an encounter's EHR context may override the user and EHR."""
    missing = [
        name for name in ("customer_id", "partner_id", "product_id") if getattr(aas, name) is None
    ]
    if missing:
        raise ValueError("aas." + ", aas.".join(missing) + " must be set to deliver audio")
    return SessionIdentity(
        correlation_id=correlation_id,
        customer_id=str(aas.customer_id),
        partner_id=str(aas.partner_id),
        product_id=str(aas.product_id),
        external_user_id=external_user_id or aas.external_user_id,
        user_guid=aas.user_guid,
        ehr_instance_id=ehr_instance_id or aas.ehr_instance_id,
        locale=aas.locale,
        actions=tuple(aas.actions),
    )
