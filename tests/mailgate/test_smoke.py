"""A first end-to-end check: SMTP in, ticket out."""

from testkit import Daemon, cli_json, make_mail, wait_for


def test_new_ticket_then_follow_up_by_in_reply_to(daemon: Daemon) -> None:
    first = make_mail()
    daemon.send(first.as_bytes())
    tickets = wait_for(lambda: cli_json(daemon.config, "tickets"))
    assert len(tickets) == 1
    reply = make_mail(subject="Re: Printer on fire", in_reply_to=first["Message-ID"], body="Still burning")
    daemon.send(reply.as_bytes())
    shown = wait_for(lambda: (t := cli_json(daemon.config, "show", tickets[0]["mask"]))["message_count"] == 2 and t)
    assert [m["text"].strip() for m in shown["messages"]] == ["Help, please.", "Still burning"]
