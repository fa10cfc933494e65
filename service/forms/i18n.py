"""The form's own words in Dutch and English, and the choice of language: ?lang, else Accept-Language, else Dutch."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

Lang = Literal["nl", "en"]
LANGS: tuple[Lang, ...] = ("nl", "en")
DEFAULT: Lang = "nl"
LANGUAGE_NAMES: dict[Lang, str] = {"nl": "Nederlands", "en": "English"}

# fmt: off
_MONTHS: dict[Lang, tuple[str, ...]] = {
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
# fmt: on

WORDS: dict[Lang, dict[str, str]] = {
    "nl": {
        "skip": "Naar de vragen",
        "privacy": "Privacy",
        "privacy_title": "Wat er met je antwoorden gebeurt",
        "other_language": "Read in English",
        "progress": "Stap {page} van {pages}",
        "next": "Volgende",
        "back": "Vorige",
        "finish": "Versturen",
        "required": "verplicht",
        "optional": "niet verplicht",
        "no_answer": "Zeg ik liever niet",
        "scale_ends": "0 = {low}, 10 = {high}",
        "choose_any": "Kies wat van toepassing is.",
        "max_chars": "Hoogstens {n} tekens.",
        "saved_note": "Je antwoorden worden bij elke stap bewaard. Met dezelfde link kun je ze wijzigen tot {closes}.",
        "already_sent": "Je antwoorden zijn verstuurd. Je kunt ze nog wijzigen tot {closes}.",
        "error_title": "Er is iets niet goed ingevuld",
        "error_prefix": "Fout: ",
        "err_required": "Beantwoord deze vraag; hij is verplicht.",
        "err_scale": "Kies een antwoord van {low} tot en met {high}.",
        "err_option": "Kies een van de antwoorden die er staan.",
        "err_options": "Kies alleen uit de antwoorden die er staan.",
        "err_too_long": "Je antwoord is {length} tekens; er passen er hoogstens {n}.",
        "err_control": "Je antwoord bevat tekens die hier niet kunnen.",
        "err_form": "Het formulier kwam niet goed aan. Probeer het nog eens.",
        "thanks_title": "Bedankt!",
        "thanks_text": "Je antwoorden zijn bewaard. Niemand kan zien wat jij persoonlijk hebt geantwoord: de "
        "resultaten worden alleen getoond voor groepen die groot genoeg zijn.",
        "thanks_change": "Wil je iets aanpassen? Dat kan met dezelfde link tot {closes}.",
        "change_answers": "Mijn antwoorden wijzigen",
        "not_found_title": "Deze link werkt niet",
        "not_found_text": "We kunnen deze link niet vinden. Kopieer de hele link uit je uitnodiging en probeer het "
        "opnieuw. Werkt het dan nog niet, vraag dan een nieuwe link aan bij HR.",
        "not_open_title": "Deze vragenlijst is nog niet open",
        "not_open_text": "Je kunt hem invullen vanaf {opens}. Bewaar je link tot dan.",
        "not_open_unplanned": "Je kunt hem invullen zodra HR hem opent. Bewaar je link tot dan.",
        "closed_title": "Deze vragenlijst is gesloten",
        "closed_text": "Je kunt geen antwoorden meer geven of wijzigen. Wat al was bewaard, telt mee in de "
        "resultaten. Bedankt voor je interesse.",
        "unavailable_title": "Even niet bereikbaar",
        "unavailable_text": "Peil kan je antwoorden nu even niet ophalen of opslaan. Probeer het over een paar "
        "seconden opnieuw. Nog een keer versturen kan geen kwaad: je antwoorden worden één keer bewaard.",
        "too_many_title": "Even geduld",
        "too_many_text": "Vanaf dit adres zijn te veel onbekende links geprobeerd. Wacht {seconds} seconden en "
        "probeer het dan opnieuw.",
        "date_time": "{day} {month} {year}, {time} uur (UTC)",
    },
    "en": {
        "skip": "Skip to the questions",
        "privacy": "Privacy",
        "privacy_title": "What happens to your answers",
        "other_language": "Lees in het Nederlands",
        "progress": "Step {page} of {pages}",
        "next": "Next",
        "back": "Back",
        "finish": "Send",
        "required": "required",
        "optional": "optional",
        "no_answer": "Prefer not to say",
        "scale_ends": "0 = {low}, 10 = {high}",
        "choose_any": "Choose all that apply.",
        "max_chars": "At most {n} characters.",
        "saved_note": "Your answers are saved at every step. You can change them with the same link until {closes}.",
        "already_sent": "Your answers have been sent. You can still change them until {closes}.",
        "error_title": "Something needs your attention",
        "error_prefix": "Error: ",
        "err_required": "Please answer this question; it is required.",
        "err_scale": "Choose an answer from {low} to {high}.",
        "err_option": "Choose one of the answers shown.",
        "err_options": "Choose only from the answers shown.",
        "err_too_long": "Your answer has {length} characters; at most {n} fit.",
        "err_control": "Your answer contains characters that cannot be used here.",
        "err_form": "The form did not arrive intact. Please try again.",
        "thanks_title": "Thank you!",
        "thanks_text": "Your answers have been saved. Nobody can see what you personally answered: results are "
        "shown only for groups that are large enough.",
        "thanks_change": "Want to change something? You can, with the same link, until {closes}.",
        "change_answers": "Change my answers",
        "not_found_title": "This link does not work",
        "not_found_text": "We cannot find this link. Copy the whole link from your invitation and try again. If it "
        "still does not work, ask HR for a new link.",
        "not_open_title": "This survey is not open yet",
        "not_open_text": "You can fill it in from {opens}. Keep your link until then.",
        "not_open_unplanned": "You can fill it in once HR opens it. Keep your link until then.",
        "closed_title": "This survey has closed",
        "closed_text": "Answers can no longer be given or changed. What was already saved counts in the results. "
        "Thank you for your interest.",
        "unavailable_title": "Briefly unavailable",
        "unavailable_text": "Peil cannot load or save your answers right now. Please try again in a few seconds. "
        "Sending them again does no harm: your answers are stored once.",
        "too_many_title": "Please wait",
        "too_many_text": "Too many unknown links were tried from this address. Wait {seconds} seconds and try again.",
        "date_time": "{day} {month} {year}, {time} (UTC)",
    },
}


def pick(requested: str | None, accept_language: str | None) -> Lang:
    """The language to speak: an explicit ``lang`` wins, then the browser's preference, then Dutch."""
    return asked_for(requested, accept_language) or DEFAULT


def asked_for(requested: str | None, accept_language: str | None) -> Lang | None:
    """The language the request asks for (``lang``, then Accept-Language), or None when it names neither."""
    if requested in LANGS:
        return requested
    return _from_accept_language(accept_language or "")


def from_accept_language(header: str) -> Lang:
    """The best of our languages in an Accept-Language header (RFC 9110 quality values), else Dutch."""
    return _from_accept_language(header) or DEFAULT


def _from_accept_language(header: str) -> Lang | None:
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        if primary not in LANGS:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0 or not quality <= 1:
            continue
        candidate = (quality, -position, primary)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best is not None else None


def other(lang: Lang) -> Lang:
    return "en" if lang == "nl" else "nl"


def day(moment: datetime, lang: Lang) -> str:
    """A date as people read it, e.g. "12 december 2026"."""
    return f"{moment.day} {_MONTHS[lang][moment.month - 1]} {moment.year}"


def when(moment: datetime, lang: Lang) -> str:
    """A moment as people read it, e.g. "12 december 2026, 17:00 uur (UTC)"."""
    return WORDS[lang]["date_time"].format(
        day=moment.day, month=_MONTHS[lang][moment.month - 1], year=moment.year, time=f"{moment:%H:%M}"
    )
