"""Published instrument versions: record each file's hash once, refuse to run when a published file changed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.instruments.loader import LoadedInstrument
from service.models import PublishedInstrument


class PublishedInstrumentChanged(RuntimeError):
    """A published instrument file differs from the version recorded: a change must be a new version."""


def publish(factory: sessionmaker[Session], instruments: dict[tuple[str, int], LoadedInstrument]) -> None:
    """Record unseen versions and check the seen ones. Safe when several workers start at once."""
    for attempt in range(3):
        try:
            with factory.begin() as session:
                recorded = {(r.slug, r.version): r.sha256 for r in session.scalars(select(PublishedInstrument))}
                changed = [
                    f"{loaded.path} ({slug} version {version}): recorded sha256 {recorded[(slug, version)][:12]}…, "
                    f"file now {loaded.sha256[:12]}…"
                    for (slug, version), loaded in sorted(instruments.items())
                    if (slug, version) in recorded and recorded[(slug, version)] != loaded.sha256
                ]
                if changed:
                    raise PublishedInstrumentChanged(
                        "published instrument files changed; publish a new version instead: " + "; ".join(changed)
                    )
                for (slug, version), loaded in instruments.items():
                    if (slug, version) not in recorded:
                        session.add(PublishedInstrument(slug=slug, version=version, sha256=loaded.sha256))
            return
        except IntegrityError:  # another worker recorded the same version first: check again
            if attempt == 2:
                raise
