"""Masks: the public id's shape, its randomness, collisions, and how subjects carry it."""

from __future__ import annotations

import re
from itertools import chain, repeat

import pytest
from sqlalchemy import select

from core.addresses import Address
from core.db import Database
from core.errors import ThreadRace
from core.groups import ensure_default_group, inbox_of
from core.inbound import Envelope, InboundMessage
from core.masks import masks_in_subject, new_mask, subject_with_mask
from core.models import Ticket, utcnow
from core.settings import Settings
from core.tickets import open_ticket


def test_new_masks_have_the_shape_and_do_not_repeat() -> None:
    drawn = [new_mask() for _ in range(5000)]
    assert all(re.fullmatch(r"[A-Z]{3}-\d{5}-\d{3}", m) for m in drawn)
    assert len(set(drawn)) == len(drawn)
    assert len({m[:3] for m in drawn}) > 500, "letters should be spread over the alphabet"


@pytest.mark.parametrize("subject, expected", [
    ("Re: [XER-83472-879] Printer", ["XER-83472-879"]),
    ("re: xer-83472-879 printer", ["XER-83472-879"]),
    ("AB-12345-678 and ABCD-12345-678 are not masks", []),
    ("XER-83472-8790 too long", []),
    ("Fwd: ABC-11111-111 about [XER-83472-879]", ["XER-83472-879", "ABC-11111-111"]),
])
def test_masks_in_subject(subject: str, expected: list[str]) -> None:
    assert masks_in_subject(subject) == expected


def test_subject_is_tagged_once() -> None:
    assert subject_with_mask("Printer", "XER-83472-879") == "[XER-83472-879] Printer"
    assert subject_with_mask("Re: [xer-83472-879] Printer", "XER-83472-879") == "Re: [xer-83472-879] Printer"


def _message() -> InboundMessage:
    return InboundMessage(message_id="<m@x.test>", sender=Address("a@x.test"), subject="s",
                          envelope=Envelope("test"), raw=b"")


def test_a_mask_collision_draws_again(database: Database, settings: Settings) -> None:
    with database.write() as session:
        group = ensure_default_group(session, settings.helpdesk)
        first = open_ticket(session, _message(), group, inbox_of(session, group), utcnow(),
                            draw_mask=lambda: "AAA-00000-001")
        draws = chain(["AAA-00000-001", "AAA-00000-001"], repeat("BBB-00000-002"))
        second = open_ticket(session, _message(), group, inbox_of(session, group), utcnow(),
                             draw_mask=lambda: next(draws))
        assert (first.mask, second.mask) == ("AAA-00000-001", "BBB-00000-002")
    with database.read() as session:
        assert sorted(session.scalars(select(Ticket.mask))) == ["AAA-00000-001", "BBB-00000-002"]


def test_endless_collisions_give_up_with_an_error(database: Database, settings: Settings) -> None:
    with pytest.raises(ThreadRace), database.write() as session:
        group = ensure_default_group(session, settings.helpdesk)
        open_ticket(session, _message(), group, inbox_of(session, group), utcnow(), draw_mask=lambda: "AAA-00000-001")
        open_ticket(session, _message(), group, inbox_of(session, group), utcnow(), draw_mask=lambda: "AAA-00000-001")
