"""One email as its recipient sees it: the template variables, the rendering and the envelope
(headers, the unsubscribe link). The dry run and the dispatcher compose through here, so a
preview is the very message that goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.config import Config
from engine.decide.firing import Planned, anchor_name
from engine.delivery.mail import Envelope
from engine.delivery.render import RenderedEmail, Renderer, email_context
from engine.delivery.tokens import unsubscribe_url
from engine.rules.language import Rule


class Composer:
    def __init__(self, renderer: Renderer, config: Config) -> None:
        self.renderer = renderer
        self.config = config

    def context(
        self,
        rule: Rule,
        user: dict[str, Any],
        anchor_at: datetime,
        anchor_properties: dict[str, Any],
        guide_id: str | None,
        guide_expires_at: datetime | None,
    ) -> dict[str, Any]:
        api = self.config.api
        return email_context(
            user=user,
            rule_id=rule.id,
            rule_description=rule.description,
            anchor_name=anchor_name(rule),
            anchor_at=anchor_at,
            anchor_properties=anchor_properties,
            guide_id=guide_id,
            guide_expires_at=guide_expires_at,
            links=self.config.links,
            brand=self.config.brand.model_dump(),
            unsubscribe_url=unsubscribe_url(api.public_url, api.secret_key, str(user["id"])),
        )

    def render(self, template: str, context: dict[str, Any]) -> RenderedEmail:
        return self.renderer.render(template, context)

    def render_planned(self, rule: Rule, planned: Planned) -> RenderedEmail:
        """The email a dry run shows for a planned row: the very one the dispatcher sends."""
        assert planned.email_template is not None
        context = self.context(
            rule,
            planned.candidate.user,
            planned.anchor_at,
            planned.candidate.anchor_properties,
            planned.guide_id,
            planned.guide_expires_at,
        )
        return self.render(planned.email_template, context)

    def envelope(
        self,
        to: str,
        message_id: str,
        rendered: RenderedEmail,
        now: datetime,
        unsubscribe_url: str,
    ) -> Envelope:
        mail = self.config.mail
        return Envelope(
            sender=mail.from_address,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=now,
            reply_to=mail.reply_to,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=mail.unsubscribe_mailto,
        )
