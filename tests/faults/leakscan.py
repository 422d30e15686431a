"""What the leak scans share: people, a vendor that echoes them changed, and the scan itself.

`script_echoes` makes the fake vendor answer for person ``n`` by echoing their
personal data back lower- or upper-cased, JSON-, URL- or HTML-escaped, or cut
off by an adapter's excerpt; `Scan.check` counts each place read and every value
found in it, in any of those forms (`found_in`, written apart from
``platypus.redaction`` on purpose, so as not to share its blind spots).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from tests.fakes.vendor import FakeVendor, Reply
from tests.support import worker_hired

__all__ = [
    "BADGE",
    "ONBOARD",
    "PEOPLE",
    "VENDOR_TOKEN",
    "Person",
    "Scan",
    "decoded",
    "found_in",
    "script_echoes",
]

VENDOR_TOKEN = "vendor-TOKEN-9f3b2c71"

ONBOARD = """
name: onboard
consumes: people.worker.hired.v1
steps:
  - name: create_worker
    to: vendor.post
    params: {path: /workers}
    payload:
      worker_id: data.worker_id
      email: data.work_email
      name: "join(' ', [data.first_name, data.last_name])"
"""

BADGE = """
name: badge
consumes: people.worker.hired.v1
on_error: discard
steps:
  - name: order_badge
    to: vendor.post
    params: {path: /badges}
    payload: {worker_id: data.worker_id, email: data.work_email}
"""


@dataclass
class Person:
    first: str
    last: str
    email: str
    personal_email: str
    born: str

    @property
    def values(self) -> list[str]:
        return [self.first, self.last, self.email, self.personal_email, self.born]

    def event(self, n: int) -> dict[str, Any]:
        return worker_hired(
            f"W-{n}",
            first_name=self.first,
            last_name=self.last,
            work_email=self.email,
            personal_email=self.personal_email,
            date_of_birth=self.born,
        )


PEOPLE = [
    Person(
        "Xavier", "Quartermain", "Xavier.Qw@Corp-Pii.example", "xq.home@mail.example", "1990-04-01"
    ),
    Person(
        "Ottilie",
        "Brannigan",
        "Ottilie.Brannigan@Corp-Pii.example",
        "otti@mail.example",
        "1985-11-30",
    ),
    Person(
        "Leopold",
        "Fairweather",
        "L.Fairweather@Corp-Pii.example",
        "leo.f@mail.example",
        "1979-02-14",
    ),
    Person(
        "Henrietta",
        "Vasquez-Oyelaran",
        "H.Vasquez@Corp-Pii.example",
        "hv@mail.example",
        "2001-07-09",
    ),
    Person(
        "Bartholomew",
        "Nakamura",
        "Bart.Nakamura.Longaddress@Corp-Pii.example",
        "bn@mail.example",
        "1968-03-03",
    ),
    Person(
        "Genevieve", "Okonkwo", "G.Okonkwo@Corp-Pii.example", "gen.ok@mail.example", "1995-12-24"
    ),
    Person(
        "Maximilian", "Trelawney", "M.Trelawney@Corp-Pii.example", "maxt@mail.example", "1988-08-08"
    ),
]


def script_echoes(vendor: FakeVendor, n: int, person: Person) -> None:
    """What the vendor answers for person ``n``: each echoes them changed."""
    email, name = person.email, f"{person.first} {person.last}"
    local, domain = email.split("@")
    if n == 0:  # lower-cased, in a 409; the badge refusal upper-cased (discarded)
        vendor.script("/workers", [(409, {"error": f"user {email.lower()} already exists"})])
        vendor.script("/badges", [(400, {"message": f"badge for {email.upper()} refused"})])
    elif n == 1:  # JSON-escaped inside a JSON text
        body = '{"message": "email \\"' + local + "\\\\u0040" + domain + '\\" invalid"}'
        vendor.script("/workers", [Reply(400, body, {"content-type": "application/json"})])
    elif n == 2:  # URL-escaped in a link
        vendor.script(
            "/workers",
            [(422, f"see https://vendor.example/users?email={quote(email)}&n={quote_plus(name)}")],
        )
    elif n == 3:  # HTML entities
        at = email.replace("@", "&#64;")
        vendor.script(
            "/workers",
            [
                Reply(
                    400,
                    f"<p>User &lt;{at}&gt; ({person.last.upper()}) rejected</p>",
                    {"content-type": "text/html"},
                )
            ],
        )
    elif n == 4:  # cut by the adapter's 300-character excerpt, in the middle of the e-mail
        padding = "x" * (300 - len('{"detail": "') - 12)
        vendor.script("/workers", [(400, {"detail": padding + email + " is not allowed"})])
    elif n == 5:  # retried twice, then delivered; both answers echo the person
        busy = (503, {"error": f"busy with {email.lower()}"})
        vendor.script(
            "/workers",
            [busy, busy, (201, {"id": "w-5", "email": email.lower(), "name": name.upper()})],
        )
        vendor.script("/badges", [(201, {"id": "b-5", "owner": email, "dob": person.born})])
    elif n == 6:  # the vendor echoes the connection's token and the person
        vendor.script("/workers", [(401, {"error": f"token {VENDOR_TOKEN} refused for {email}"})])


@dataclass
class Scan:
    """What was read, and what was found where."""

    read: dict[str, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def check(self, where: str, kind: str, text: str, values: list[str]) -> None:
        self.read[kind] = self.read.get(kind, 0) + 1
        for value in values:
            found = found_in(value, text)
            if found:
                self.leaks.append(f"{where}: {value!r} as {found!r}")


def decoded(text: str) -> str:
    """The text with JSON, URL and HTML escapes read: how a person would read it."""
    text = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return html.unescape(unquote_plus(text)).lower()


def found_in(value: str, text: str) -> str:
    """``value``, or a fragment of it 8 characters or longer, in context, if in ``text``.

    Written apart from platypus.redaction on purpose: it must not share its blind spots.
    """
    haystacks = (text.lower(), decoded(text))
    needle = value.lower()
    if len(needle) < 6:
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])")
        pieces = [pattern]
    else:
        words = {needle}
        if "@" in needle:  # what an excerpt cut in an e-mail address leaves
            local = needle.split("@")[0]
            words.add(needle[:8])
            if len(local) >= 6:
                words.add(local)
        pieces = [re.compile(re.escape(word)) for word in words]
    for piece in pieces:
        for haystack in haystacks:
            match = piece.search(haystack)
            if match:
                return haystack[max(0, match.start() - 60) : match.end() + 60]
    return ""
