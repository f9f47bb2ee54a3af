"""Builds the labelled PII evaluation set (`pii_eval.jsonl`) that `bench/pii.py` scores screening on.

Each row is a sentence of the kind people paste into evaluation suites (clinic notes, support tickets,
CRM exports, earnings-call notes) with every personal-data span labelled by its character offsets:

    {"id": "r0001", "text": "...", "spans": [{"start": 10, "end": 22, "label": "PHONE_NUMBER"}], "group": "phone"}

Labels are evalhub's screening classes (metrics.pii.EVAL_CLASSES maps Presidio's entity names onto them).
Negative rows (company and product names, drug doses, order numbers, ordinary dates) have no spans. The
values are invented but well formed (IBANs carry valid mod-97 check digits, card numbers pass Luhn, NHS
numbers their mod-11 check), so a checksum-validating recognizer is not fooled into missing them.

    .venv/bin/python tests/data/pii/make_pii_set.py      # rewrites pii_eval.jsonl (seeded: same output)
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

OUT = Path(__file__).with_name("pii_eval.jsonl")

FIRST = ["Maria", "James", "Aisha", "Tomasz", "Priya", "Oluwaseun", "Chen", "Sofia", "Liam", "Fatima",
         "Mateo", "Hannah", "Kenji", "Ingrid", "Diego", "Emily", "Rahul", "Zoe", "Ahmed", "Claire",
         "Lucas", "Nadia", "Ethan", "Yuki", "Olivia", "Samuel", "Elena", "David", "Grace", "Marcus"]
LAST = ["Garcia", "Thompson", "Okafor", "Kowalski", "Sharma", "Adeyemi", "Wang", "Rossi", "Murphy",
        "Haddad", "Fernandez", "Becker", "Tanaka", "Larsen", "Morales", "Clarke", "Patel", "Dubois",
        "Hassan", "Bennett", "Silva", "Novak", "Walker", "Sato", "Johnson", "Reed", "Petrova", "Miller",
        "Nguyen", "Brooks"]
DOMAINS = ["example.com", "mail.co.uk", "acme-health.org", "northwind.io", "posteo.de", "clinic.net",
           "outlook.com", "univ.edu"]
STREETS = ["Main Street", "Baker St.", "Oak Avenue", "Rose Lane", "Station Road", "Maple Drive",
           "Elm Court", "Park Way", "High Street", "Willow Close", "Cedar Boulevard", "Church Road"]
CITIES = ["Leeds", "Boston", "Manchester", "Denver", "Bristol", "Portland", "Glasgow", "Austin"]
COMPANIES = ["Gamma Inc", "Jadeport Foods Ltd", "Lattice Industries", "Northwind Metals plc",
             "Corvane Health GmbH", "Brightwater Capital LLC", "Helix Robotics Corp", "Tandem Logistics",
             "Morgan Freight Co", "Sterling & Hale", "Blue Harbor Partners", "Quantum Dynamics Inc"]
PRODUCTS = ["Aurora X2 router", "PulseFit 3 watch", "Nimbus 8 tablet", "RoadRunner 3000 vacuum",
            "Vega Pro headset", "Atlas 12 drill", "Zephyr air purifier", "Orion 5G modem"]
DRUGS = ["amoxicillin 500 mg three times daily", "ibuprofen 400 mg every 8 hours",
         "metformin 850 mg twice daily", "prednisolone 10 mg once daily", "atorvastatin 20 mg at night",
         "paracetamol 1 g four times a day", "warfarin 5 mg", "insulin glargine 12 units"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


class Row:
    """A text built piece by piece, recording the offsets of the labelled pieces."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[dict] = []

    def add(self, piece: str, label: str | None = None) -> Row:
        if label:
            self.spans.append({"start": len(self.text), "end": len(self.text) + len(piece), "label": label})
        self.text += piece
        return self


def fill(rng: random.Random, template: str, values: dict[str, tuple[str, str | None]]) -> Row:
    """`template` with `{key}` slots; values maps key -> (text, label or None)."""
    row = Row()
    for part in re.split(r"(\{\w+\})", template):
        if part.startswith("{") and part.endswith("}"):
            text, label = values[part[1:-1]]
            row.add(text, label)
        else:
            row.add(part)
    return row


# --- value makers -------------------------------------------------------------------------------


def name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}",
                        f"{last}.{first[0]}"])
    return f"{local}@{rng.choice(DOMAINS)}"


def phone(rng: random.Random, kind: str) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    area = rng.choice(US_AREA_CODES)
    return {
        "us_paren": f"({area}) {rng.randint(2, 9)}{d(2)}-{d(4)}",
        "us_dash": f"{area}-{rng.randint(2, 9)}{d(2)}-{d(4)}",
        "us_intl": f"+1 {area} {rng.randint(2, 9)}{d(2)} {d(4)}",
        "uk_land": f"020 7{d(3)} {d(4)}",
        "uk_intl": f"+44 20 7{d(3)} {d(4)}",
        "uk_mobile": f"07{rng.choice('4579')}{d(2)} {d(6)}",
        "uk_mobile_intl": f"+44 7{rng.choice('4579')}{d(2)} {d(6)}",
        "de_intl": f"+49 30 {d(4)} {d(4)}",
        "fr_intl": f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
        "in_intl": f"+91 98{d(3)} {d(5)}",
        "local": f"555-01{d(2)}",
        "local_dot": f"555.01{d(2)}",
    }[kind]


# Real (assigned) North American area codes: a phone-number validator rejects unassigned ones, as it should.
US_AREA_CODES = ["212", "415", "312", "617", "303", "206", "512", "702", "980", "646", "213", "404"]

PHONE_KINDS = ["us_paren", "us_dash", "us_intl", "uk_land", "uk_intl", "uk_mobile", "uk_mobile_intl",
               "de_intl", "fr_intl", "in_intl", "local", "local_dot"]


def dob(rng: random.Random) -> str:
    y, m, day = rng.randint(1935, 2005), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}-{m:02d}-{day:02d}", f"{day:02d}/{m:02d}/{y}", f"{m:02d}/{day:02d}/{y}",
                       f"{day} {MONTHS[m - 1]} {y}", f"{MONTHS[m - 1]} {day}, {y}", f"{day:02d}.{m:02d}.{y}"])


def street(rng: random.Random) -> str:
    number = f"{rng.randint(1, 2400)}{rng.choice(['', '', '', 'B', 'A'])}"
    return f"{number} {rng.choice(STREETS)}"


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def iban(rng: random.Random) -> str:
    country, bban = rng.choice([
        ("DE", "".join(rng.choice(string.digits) for _ in range(18))),
        ("GB", "NWBK" + "".join(rng.choice(string.digits) for _ in range(14))),
        ("FR", "".join(rng.choice(string.digits) for _ in range(23))),
        ("NL", "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))),
    ])
    raw = country + _iban_check(country, bban) + bban
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4)) if rng.random() < 0.5 else raw


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:
            n *= 2
            n -= 9 if n > 9 else 0
        total += n
    number = body + str((10 - total % 10) % 10)
    if length == 15:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    sep = rng.choice([" ", "-", ""])
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"


def nhs(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            n = "".join(map(str, digits)) + str(check)
            return f"{n[:3]} {n[3:6]} {n[6:]}"


def nino(rng: random.Random) -> str:
    # Prefix letters as HMRC allocates them (no D, F, I, Q, U, V; no O second; never BG, GB, NK, KN, NT, TN, ZZ).
    first, second = "ABCEGHJKLMNPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    prefix = "GB"
    while prefix in {"BG", "GB", "NK", "KN", "NT", "TN", "ZZ"}:
        prefix = rng.choice(first) + rng.choice(second)
    return f"{prefix} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.choice('ABCD')}"


# --- templates ----------------------------------------------------------------------------------

TEMPLATES: dict[str, list[str]] = {
    "email": [
        "Please reply to {v} before Friday.",
        "Contact: {v}",
        "The customer wrote from {v} about a late refund.",
        "cc {v} on the follow-up",
        "Send the signed form to {v} or fax it.",
    ],
    "phone": [
        "Call me back on {v} after 5pm.",
        "Phone: {v}",
        "Her mobile is {v} if the line drops.",
        "Reached the patient at {v}; no answer.",
        "tel {v} (work)",
        "Customer asked us to ring {v} tomorrow.",
    ],
    "dob_context": [
        "DOB {v}",
        "Date of birth: {v}",
        "Patient born on {v}, presents with cough.",
        "D.O.B. {v} - verified at reception.",
        "Birth date {v}; allergies none known.",
        "The member's date of birth is {v}.",
        "born {v} in a rural clinic",
    ],
    "dob_bare": [
        "{n}, {v}, attended for review.",
        "Name: {n} ({v})",
        "{n} | {v} | follow-up in 2 weeks",
    ],
    "address": [
        "She lives at {v}, {c}.",
        "Ship to {v}, {c} before noon.",
        "Address: {v}, {c}",
        "The clinic moved to {v} last spring.",
        "Return the parcel to {v}.",
    ],
    "iban": [
        "Refund to IBAN {v} please.",
        "Bank details: {v}",
        "Transfer the deposit to account {v} by Monday.",
    ],
    "card": [
        "Card number {v}, expiry 09/27.",
        "charged to card {v}",
        "He read out {v} over the phone.",
        "Payment card: {v}",
    ],
    "ssn": [
        "SSN {v} on file.",
        "Social security number: {v}",
        "Employee SSN is {v}; update payroll.",
    ],
    "nhs": [
        "NHS number {v}",
        "Patient NHS no. {v}, GP informed.",
    ],
    "nino": [
        "National Insurance number {v}",
        "NI number: {v}",
    ],
    "person": [
        "{v} called about the invoice.",
        "Dr. {v} reviewed the scan.",
        "Spoke with {v} from accounts.",
        "Assigned to {v}.",
        "{v} said the delivery was late again.",
        "Meeting notes taken by {v}.",
    ],
}

NEGATIVES = [
    "{co} reported revenue of $4.2 million in the third quarter.",
    "Revenue at {co} grew 12% year on year, driven by exports.",
    "{co} will acquire {co2} for $310 million in cash.",
    "Analysts expect {co} to raise guidance next quarter.",
    "The {pr} ships in two colours from March.",
    "Customers complained that the {pr} overheats after an hour.",
    "Firmware 2.3.1 for the {pr} was released on 2024-03-01.",
    "Prescribed {dr}.",
    "Continue {dr} and review in 14 days.",
    "Stop {dr} if the rash returns.",
    "Order #4471-22 shipped on 12 June; tracking 1Z999AA10123456784.",
    "Invoice INV-2024-0031 totals 1,250.00 EUR, due in 30 days.",
    "Lot 58213 was recalled after a labelling error.",
    "The board meets on 2025-01-14 at 10:00 in room 4B.",
    "Blood pressure 128/82, pulse 72, temperature 37.1 C.",
    "Q3 operating margin was 18.4%, up 2.1 points.",
    "The survey had 1,204 respondents across 12 regions.",
    "Version 10.4.2 fixes the crash on start-up.",
    "Ticket 88213 was closed after the patch on 3 May.",
    "HbA1c fell from 8.1% to 7.2% over six months.",
]


def build(seed: int = 20261206) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []

    def emit(group: str, row: Row) -> None:
        rows.append({"id": f"r{len(rows) + 1:04d}", "text": row.text, "spans": row.spans, "group": group})

    for _ in range(5):  # e-mails: 25
        for t in TEMPLATES["email"]:
            emit("email", fill(rng, t, {"v": (email(rng), "EMAIL_ADDRESS")}))
    for kind in PHONE_KINDS:  # phones: 12 formats x 4 = 48
        for _ in range(4):
            emit("phone", fill(rng, rng.choice(TEMPLATES["phone"]), {"v": (phone(rng, kind), "PHONE_NUMBER")}))
    for _ in range(5):  # dates of birth with context words: 35
        for t in TEMPLATES["dob_context"]:
            emit("dob", fill(rng, t, {"v": (dob(rng), "DATE_OF_BIRTH")}))
    for _ in range(4):  # dates of birth beside a name, no context word: 12
        for t in TEMPLATES["dob_bare"]:
            emit("dob_bare", fill(rng, t, {"n": (name(rng), "PERSON"), "v": (dob(rng), "DATE_OF_BIRTH")}))
    for _ in range(5):  # street addresses (+ city): 25
        for t in TEMPLATES["address"]:
            values = {"v": (street(rng), "LOCATION"), "c": (rng.choice(CITIES), "LOCATION")}
            emit("address", fill(rng, t, values))
    for _ in range(5):  # IBAN: 15
        for t in TEMPLATES["iban"]:
            emit("iban", fill(rng, t, {"v": (iban(rng), "IBAN_CODE")}))
    for _ in range(5):  # cards: 20
        for t in TEMPLATES["card"]:
            emit("card", fill(rng, t, {"v": (card(rng), "CREDIT_CARD")}))
    for _ in range(4):  # national ids: 12 + 8 + 8
        for t in TEMPLATES["ssn"]:
            emit("national_id", fill(rng, t, {"v": (ssn(rng), "NATIONAL_ID")}))
        for t in TEMPLATES["nhs"]:
            emit("national_id", fill(rng, t, {"v": (nhs(rng), "NATIONAL_ID")}))
        for t in TEMPLATES["nino"]:
            emit("national_id", fill(rng, t, {"v": (nino(rng), "NATIONAL_ID")}))
    for _ in range(5):  # person names: 30
        for t in TEMPLATES["person"]:
            emit("person", fill(rng, t, {"v": (name(rng), "PERSON")}))
    for _ in range(3):  # negatives: 60
        for t in NEGATIVES:
            co, co2 = rng.sample(COMPANIES, 2)
            values = {"co": (co, None), "co2": (co2, None), "pr": (rng.choice(PRODUCTS), None),
                      "dr": (rng.choice(DRUGS), None)}
            emit("negative", fill(rng, t, values))
    # Hard negatives: shapes the recognizers look for, in text that holds no such personal data.
    hard = [
        "The firm was founded on {d} by {n}.",
        "{n} signed the lease on {d}, according to the archive.",
        "See ledger pages 123-4567 for the 1998 entries.",
        "Batch 482-1930 failed the sterility test.",
        "The clinic opened on {d}.",
    ]
    for _ in range(2):  # 10
        for t in hard:
            emit("hard_negative", fill(rng, t, {"n": (name(rng), "PERSON"), "d": (dob(rng), None)}))
    for _ in range(15):  # mixed rows, several kinds in one text: 15
        row = Row()
        row.add("Customer ").add(name(rng), "PERSON").add(" (").add(email(rng), "EMAIL_ADDRESS")
        row.add(", ").add(phone(rng, rng.choice(PHONE_KINDS)), "PHONE_NUMBER").add(") complained that the ")
        row.add(rng.choice(PRODUCTS)).add(" from ").add(rng.choice(COMPANIES)).add(" arrived broken.")
        emit("mixed", row)
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
