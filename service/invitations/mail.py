"""The messages Peil sends: a participant's invitation and reminder, plain text and HTML, in their language.

Each says what the survey is and how long it takes (the instrument's own description), until when it is open,
the personal link, and the privacy promise in the very words of the form.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Literal

from service.forms import i18n
from service.instruments.schema import Instrument
from service.invitations.contact import Contact

Kind = Literal["invitation", "reminder"]

WORDS: dict[i18n.Lang, dict[str, str]] = {
    "nl": {
        "invitation_subject": "Uitnodiging: {title}",
        "reminder_subject": "Herinnering: {title}",
        "greeting": "Hallo,",
        "invitation_intro": "Je bent uitgenodigd voor de vragenlijst ‘{title}’.",
        "reminder_intro": "Je hebt de vragenlijst ‘{title}’ nog niet verstuurd. Dat kan nog tot de peiling sluit.",
        "open_until": "De vragenlijst staat open tot {closes}. Dit is je persoonlijke link:",
        "button": "Naar de vragenlijst",
        "personal": "Deze link is alleen voor jou: stuur deze e-mail niet door.",
        "footer": "Deze e-mail is verstuurd door Peil, de peilingdienst van je werkgever. Peil stuurt uitnodigingen "
        "en herinneringen zelf; HR ziet je link niet en hoort niet wie een herinnering krijgt.",
    },
    "en": {
        "invitation_subject": "Invitation: {title}",
        "reminder_subject": "Reminder: {title}",
        "greeting": "Hello,",
        "invitation_intro": "You are invited to the survey ‘{title}’.",
        "reminder_intro": "You have not sent the survey ‘{title}’ yet. You still can until it closes.",
        "open_until": "The survey is open until {closes}. This is your personal link:",
        "button": "Go to the survey",
        "personal": "This link is yours alone: please don't forward this email.",
        "footer": "This email was sent by Peil, your employer's survey service. Peil sends invitations and "
        "reminders itself; HR does not see your link and is not told who gets a reminder.",
    },
}


def link(base_url: str, contact: Contact) -> str:
    """The participant's personal link; it opens the form in their language."""
    return f"{base_url.rstrip('/')}/s/{contact.token}?lang={contact.language}"


def build(
    kind: Kind, *, contact: Contact, instrument: Instrument, closes_at: datetime, base_url: str, sender: str
) -> EmailMessage:
    """The invitation or reminder for ``contact``, as a multipart/alternative message (text and HTML)."""
    lang = contact.language
    words, form = WORDS[lang], i18n.WORDS[lang]
    title = instrument.title.get(lang)
    url = link(base_url, contact)
    paragraphs = [
        words["greeting"],
        words[f"{kind}_intro"].format(title=title),
        instrument.description.get(lang),
        words["open_until"].format(closes=i18n.when(closes_at, lang)),
    ]
    privacy = [form["privacy_title"], form["privacy_text"]]
    text = "\n\n".join([*paragraphs, url, words["personal"], *privacy, "--", words["footer"]]) + "\n"

    message = EmailMessage()
    message["Subject"] = words[f"{kind}_subject"].format(title=title)
    message["From"] = sender
    message["To"] = Address(addr_spec=contact.email)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to Peil
    message.set_content(text)
    message.add_alternative(_html(lang, paragraphs, url, words, privacy), subtype="html")
    message["Content-Language"] = lang  # after the content: setting it replaces Content-* headers
    return message


def _html(lang: i18n.Lang, paragraphs: list[str], url: str, words: dict[str, str], privacy: list[str]) -> str:
    body = "".join(f"<p>{escape(p)}</p>\n" for p in paragraphs)
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head><meta charset="utf-8"><title>Peil</title></head>\n'
        '<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">\n'
        f"{body}"
        f'<p><a href="{escape(url)}" style="font-weight: bold">{escape(words["button"])}</a><br>\n'
        f"<small>{escape(url)}</small></p>\n"
        f"<p>{escape(words['personal'])}</p>\n"
        f'<h2 style="font-size: 1.1em">{escape(privacy[0])}</h2>\n<p>{escape(privacy[1])}</p>\n'
        f"<hr>\n<p><small>{escape(words['footer'])}</small></p>\n</body>\n</html>\n"
    )


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rpartition("@")[2] or "localhost"
