"""The webhook queue: ledger rows whose rule sends a webhook, claimed, handed over and
finished as the webhook dispatcher drives them; the same states and claims as the emails'
(`engine.store.outbox.Queue`), over rows the email dispatcher never claims."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.sql import ColumnElement

from engine.model import USER_FIELDS, WebhookDue
from engine.sql.schema import deliveries
from engine.store.outbox import Queue


class WebhookOutbox(Queue):
    """The webhook dispatcher's view of the database."""

    mine: ColumnElement[bool] = deliveries.c.webhook_template.is_not(None)

    def claim_due(self, now: datetime, limit: int = 20) -> list[WebhookDue]:
        """Claim due webhooks (`claimed`); each goes `sending` just before its request."""
        rows = self._claimed(self._claim(now, limit))
        return [
            WebhookDue(
                id=row.id,
                rule_id=row.rule_id,
                subject=row.subject,
                occurrence=row.occurrence,
                user={f: getattr(row, f"u_{f}") for f in USER_FIELDS},
                body_template=row.webhook_template,
                anchor_at=row.anchor_at,
                anchor_properties=row.anchor_properties or {},
                guide_id=row.guide_id,
                guide_expires_at=row.guide_expires_at,
                attempts=row.attempts,
                created_at=row.created_at,
            )
            for row in rows
        ]
