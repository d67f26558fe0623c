"""One email as its recipient sees it: the template variables, the rendering and the envelope
(headers, the unsubscribe link). The dry run and the dispatcher compose through here, so a
preview is the very message that goes out.

Besides the row in hand, a template sees the recipient's account and inviter: the composer
asks its `DirectoryStore` for both at once, one call per email (none for a user with
neither), and never opens the database itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

from engine.config import Config
from engine.decide.firing import Planned, anchor_name
from engine.delivery.envelope import Envelope
from engine.delivery.locales import user_locale
from engine.delivery.mail import build_message
from engine.delivery.render import RenderedEmail, Renderer, email_context
from engine.delivery.tokens import UNSUBSCRIBE_PATH, unsubscribe_url
from engine.delivery.track_html import add_pixel, rewrite_links
from engine.delivery.tracking import Tracked, click_url, open_url
from engine.rules.language import Rule

# (account, inviter): {"id", "traits", "member_count"} and {"id", "email", "traits"}, or None.
Relations = tuple[dict[str, Any] | None, dict[str, Any] | None]


class DirectoryStore(Protocol):
    """What composing needs of the database (`engine.store.directory.Directory`; tests may
    hand it `engine.store.testing.MemoryDirectory`): the account named `account_id`, with
    traits `{}` before its group call, and the stored user `inviter_id`, either None when
    its id is None (or names no stored user, for the inviter)."""

    def relations(self, account_id: str | None, inviter_id: str | None) -> Relations: ...


class Composer:
    def __init__(self, renderer: Renderer, config: Config, directory: DirectoryStore) -> None:
        self.renderer = renderer
        self.config = config
        self.directory = directory

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
        account_id, inviter_id = user.get("account_id") or None, user.get("invited_by") or None
        account, inviter = (
            self.directory.relations(account_id, inviter_id)
            if account_id or inviter_id
            else (None, None)
        )
        return email_context(
            user=user,
            account=account,
            inviter=inviter,
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
        """In the recipient's locale, where the template has a translation for it."""
        return self.renderer.render(template, context, user_locale(context["user"]))

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

    def message(
        self,
        rule: Rule,
        template: str,
        user: dict[str, Any],
        anchor: tuple[datetime, dict[str, Any]],
        guide: tuple[str | None, datetime | None],
        *,
        to: str,
        message_id: str,
        now: datetime,
        subject_prefix: str = "",
        tracked: bool = True,
    ) -> EmailMessage:
        """The message the dispatcher hands over for this user and rule, from `template`
        (the ledger row's: the rule may have been edited since; `anchor`: its time and
        properties; `guide`: its id and expiry). `send-test` builds through here too, so
        a test send is the very email a user would get, bar the subject prefix it adds
        (and `tracked=False`: its opens and clicks are not the user's).
        Raises TemplateError when the template cannot render."""
        context = self.context(rule, user, *anchor, *guide)
        rendered = self.render(template, context)
        if tracked and self.config.mail.tracking.enabled:
            rendered = replace(
                rendered, html=self._track(rendered.html, rule, user, message_id, now)
            )
        if subject_prefix:
            rendered = replace(rendered, subject=f"{subject_prefix}{rendered.subject}")
        # The token is timestamped: the header must carry the very link the bodies show.
        unsubscribe = str(context["unsubscribe_url"])
        return build_message(self.envelope(to, message_id, rendered, now, unsubscribe))

    def _track(
        self, html: str, rule: Rule, user: dict[str, Any], message_id: str, now: datetime
    ) -> str:
        api, tracking = self.config.api, self.config.mail.tracking
        base = Tracked("open", rule.id, str(user["id"]), message_id, now)
        if tracking.clicks:
            html = rewrite_links(
                html,
                lambda url: click_url(
                    api.public_url, api.secret_key, replace(base, kind="click", url=url)
                ),
                keep=f"{api.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}",
            )
        if tracking.opens:
            html = add_pixel(html, open_url(api.public_url, api.secret_key, base))
        return html

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
