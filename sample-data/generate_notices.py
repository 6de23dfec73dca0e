#!/usr/bin/env python3
"""Generates synthetic allocation notices (Verteilungsverfügungen) of the Land's ADD as real PDFs, and the expected
figures for the tests, from this script's own records (never from kubus).

No real person is in here: names, birth dates, countries and dates are drawn at random (seed fixed).

Writes:
  zuweisungen/verteilung_YYYY-MM_N.pdf   one notice each: the ADD's letterhead, a title, the list of persons
      (Lfd. Nr., Familienname, Vorname, Geschlecht, Geburtsdatum, Herkunftsland, [Religion,] Ankunft AfA,
      Zuweisung) and "Seite n von m" at the foot of every page. Layouts, by turns:
        portrait   one table, continued over as many pages as it needs, the header repeated on every page;
        landscape  a landscape page with a religion column (which the mapping drops);
        cover      a cover letter page before the list, whose header wraps its names over two lines
                   ("Geburts-" over "datum").
      Long names and countries wrap over two lines of their cell. Names carry umlauts and diacritics.
      A few lines are deliberately wrong: a date of birth that does not exist, an unknown country.
  zuweisungen-scan/verteilung_2024-03_scan.pdf
                                      a notice as a scan: one image per page, no text layer (kubus refuses it).
  expected/zuweisungen_lines.csv      per file: its text lines, lines accepted, rejected, skipped by reason, pages.
  expected/zuweisungen_quarantine.csv every line kubus must reject: file, value, problem.
  expected/zuweisungen_days_by_month.csv
                                      per allocation month: allocations, their days from arrival summed, and the
                                      median of those days.
  expected/zuweisungen_names.csv      every name and date of birth in the notices (none may reach the warehouse).
  expected/zuweisungen_by_month_sex_region.csv
                                      persons allocated per allocation month, sex and region of origin.

Usage: python3 sample-data/generate_notices.py   (needs fpdf2 and Pillow from PyPI, and the DejaVu fonts)
       python3 sample-data/generate_notices.py --notices 1000 --out DIR --expected DIR   (benches/pdf)
"""
import argparse
import csv
import datetime as dt
import os
import random
import statistics

from fpdf import FPDF
from fpdf.enums import VAlign
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "zuweisungen")
SCANS = os.path.join(HERE, "zuweisungen-scan")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
rng = random.Random(20250601)

# Country of origin as the Land writes it -> continent key of the nationality dimension.
COUNTRIES = [
    ("Syrien", "AS", 30), ("Afghanistan", "AS", 22), ("Irak", "AS", 10), ("Türkei", "AS", 12), ("Iran", "AS", 6),
    ("Eritrea", "AF", 5), ("Somalia", "AF", 4), ("Nigeria", "AF", 3), ("Gambia", "AF", 2),
    ("Russische Föderation", "EU", 3), ("Kosovo", "EU", 2), ("Albanien", "EU", 2),
    ("Venezuela", "AM", 2), ("Kolumbien", "AM", 3), ("ungeklärt", "XX", 1),
]
SURNAMES = [
    "Al-Hassan", "Haddad", "Rahimi", "Ahmadzai", "Yılmaz", "Öztürk", "Çelik", "Şahin", "Karimi", "Hosseini",
    "Tesfaye", "Abdi", "Okafor", "Jallow", "Krasniqi", "Hoxha", "Ivanova", "Müller-Lüdenscheidt", "Pérez",
    "García Márquez", "Nguyễn", "Abdulrahman Al-Hashimi", "Gebremedhin Tesfamariam", "Đorđević", "Mahmoud",
]
FIRST_M = ["Ahmad", "Mohammed", "Omar", "Emre", "Ali", "Yonas", "Chinedu", "Arben", "Dmitrij", "José", "Hüseyin"]
FIRST_W = ["Fatima", "Aisha", "Zeynep", "Maryam", "Selam", "Ngozi", "Drita", "Olga", "María", "Gülşen", "Zahra"]
RELIGIONS = ["islamisch", "christlich", "ohne Angabe", "jesidisch", "orthodox"]
MONTHS = [(y, m) for y in (2024, 2025) for m in range(1, 13)][:18]  # 2024-01 .. 2025-06


def wrap(text, width):
    """Breaks a cell's text into lines of at most `width` characters at spaces (the generator decides every line
    break itself, so that it knows every line of the PDF)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line]


def person(year, month):
    sex = rng.choices(["m", "w", "d"], [60, 39, 1])[0]
    first = rng.choice(FIRST_M if sex == "m" else FIRST_W if sex == "w" else FIRST_M + FIRST_W)
    country, continent, _ = rng.choices(COUNTRIES, [c[2] for c in COUNTRIES])[0]
    alloc = dt.date(year, month, rng.randint(1, 28))
    arrival = alloc - dt.timedelta(days=rng.randint(14, 180))
    age = rng.choices(range(0, 70), [3 if a < 18 else 5 if a < 35 else 2 for a in range(70)])[0]
    birth = dt.date(alloc.year - age, rng.randint(1, 12), rng.randint(1, 28))
    if birth > alloc:
        birth = dt.date(birth.year - 1, birth.month, birth.day)
    return {
        "surname": rng.choice(SURNAMES), "first": first, "sex": sex, "birth": birth.strftime("%d.%m.%Y"),
        "country": country, "continent": continent, "religion": rng.choice(RELIGIONS),
        "arrival": arrival.strftime("%d.%m.%Y"), "alloc": alloc.strftime("%d.%m.%Y"),
        "month": f"{year}-{month:02d}", "problem": None,
    }


class Notice(FPDF):
    """A notice: letterhead on every page, "Seite n von m" at the foot."""

    def __init__(self, number, orientation):
        super().__init__(orientation=orientation, unit="mm", format="A4")
        self.number = number
        self.add_font("DejaVu", "", FONT)
        self.add_font("DejaVu", "B", FONT_BOLD)
        self.set_auto_page_break(True, margin=20)
        self.alias_nb_pages("{nb}")
        self.set_creation_date(dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc))  # the same bytes on every run

    def header(self):
        self.set_font("DejaVu", "", 8)
        self.cell(0, 5, f"Aufsichts- und Dienstleistungsdirektion · Verteilungsverfügung {self.number}")
        self.ln(9)

    def footer(self):
        self.set_y(-14)
        self.set_font("DejaVu", "", 8)
        self.cell(0, 5, f"Seite {self.page_no()} von {{nb}}", align="C")


def write_notice(path, number, persons, layout):
    """Writes one notice and returns its lines: how many text lines the PDF has and what each is."""
    landscape = layout == "landscape"
    pdf = Notice(number, "L" if landscape else "P")
    tally = {"title": 0, "header": 0, "header (repeated)": 0, "page header": 0, "page without the table": 0,
             "page footer": 0, "footer": 0}
    if layout == "cover":
        pdf.add_page()
        pdf.set_font("DejaVu", "", 10)
        letter = [
            "Stadtverwaltung Kaiserslautern", "Referat Jugend und Sport / Ausländerbehörde", "67653 Kaiserslautern",
            "", f"Verteilungsverfügung {number}",
            "Sehr geehrte Damen und Herren,",
            "nach § 50 AsylG werden die in der anliegenden Liste genannten Personen Ihrer Stadt zugewiesen.",
            "Die Personen sind verpflichtet, sich unverzüglich bei Ihnen zu melden.",
            "Mit freundlichen Grüßen", "Im Auftrag",
        ]
        for line in letter:
            if line:
                pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
                tally["page without the table"] += 1
            else:
                pdf.ln(6)
        tally["page without the table"] += 2  # the letterhead and the page's foot
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, f"Anlage zur Verteilungsverfügung {number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.cell(0, 6, "Liste der zugewiesenen Personen (Stand: Tag der Zuweisung)", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    columns = ["Lfd. Nr.", "Familienname", "Vorname", "Geschlecht", "Geburtsdatum", "Herkunftsland"]
    widths = [14, 34, 22, 20, 26, 30]
    chars = [6, 17, 11, 10, 12, 14]
    if landscape:
        columns.append("Religion")
        widths.append(26)
        chars.append(12)
    columns += ["Ankunft AfA", "Zuweisung"]
    widths += [22, 22]
    chars += [11, 11]
    header_lines = 1
    if layout == "cover":
        wrapped = {"Lfd. Nr.": "Lfd.\nNr.", "Geburtsdatum": "Geburts-\ndatum", "Herkunftsland": "Herkunfts-\nland",
                   "Ankunft AfA": "Ankunft\nAfA"}
        columns = [wrapped.get(c, c) for c in columns]
        header_lines = 2
    pdf.set_font("DejaVu", "", 8)
    first_page = pdf.page_no()
    with pdf.table(col_widths=widths, width=sum(widths), align="LEFT", v_align=VAlign.T, line_height=4.2,
                   text_align="LEFT", first_row_as_headings=True, repeat_headings=1) as table:
        table.row(columns)
        for n, p in enumerate(persons, 1):
            values = [str(n), p["surname"], p["first"], p["sex"], p["birth"], p["country"]]
            if landscape:
                values.append(p["religion"])
            values += [p["arrival"], p["alloc"]]
            cells = [wrap(v, c) for v, c in zip(values, chars)]
            p["lines"] = max(len(c) for c in cells)
            table.row(["\n".join(c) for c in cells])
    after = pdf.page_no()
    tables = after - first_page + 1
    pdf.ln(6)
    pdf.set_font("DejaVu", "", 9)
    closing = ["Diese Liste ist Bestandteil der Verteilungsverfügung.", "Mit freundlichen Grüßen",
               "Aufsichts- und Dienstleistungsdirektion"]
    started = None
    for line in closing:
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
        started = started or pdf.page_no()
    last = pdf.page_no()
    pdf.output(path)
    # The reader's view: the letterhead, title and header of the first page of the table; on every later page
    # the letterhead and the header again; "Seite n von m" at every page's foot; from the first closing line on,
    # everything is the notice's footer.
    tally["title"] += 3
    tally["header"] += header_lines
    tally["header (repeated)"] += (tables - 1) * header_lines
    tally["page header"] += (tables - 1) + (started - after)
    tally["page footer"] += tables - (1 if started == after else 0)
    tally["footer"] += len(closing) + (last - started + 1) + (last - started)
    return tally, pdf.page_no()


def write_scan(path):
    """A notice as a scanner makes it: the page is one image, without any text."""
    page = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 28)
    draw.text((100, 100), "Verteilungsverfügung 2024/099 (Scan)", fill=0, font=font)
    for i in range(12):
        draw.text((100, 200 + 40 * i), f"{i + 1}   Mustername   Vorname   m   01.01.1990   Syrien", fill=0, font=font)
    image = os.path.join(SCANS, "scan.png")
    page.save(image)
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_creation_date(dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc))
    pdf.add_page()
    pdf.image(image, x=0, y=0, w=210, h=297)
    pdf.output(path)
    os.remove(image)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notices", type=int, help="this many notices, the months over again (benches); no scan")
    ap.add_argument("--out", default=OUT, help="where the notices go")
    ap.add_argument("--expected", default=os.path.join(HERE, "expected"), help="where the expected figures go")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith(".pdf"):
            os.remove(os.path.join(a.out, f))
    layouts = ["portrait", "landscape", "cover"]
    accounted, quarantine, persons_by, identities, days_by = [], [], {}, set(), {}
    notice = 0
    rounds = range(10**6) if a.notices else [0]
    for round_ in rounds:
        if a.notices and notice >= a.notices:
            break
        for i, (year, month) in enumerate(MONTHS):
            if a.notices and notice >= a.notices:
                break
            notice = write_month(a, i, year, month, round_, notice, layouts, accounted, quarantine, persons_by,
                                 identities, days_by)
    write_expected(a, accounted, quarantine, persons_by, identities, days_by)
    if not a.notices:
        os.makedirs(SCANS, exist_ok=True)
        write_scan(os.path.join(SCANS, "verteilung_2024-03_scan.pdf"))
    pages = sum(row[-1] for row in accounted)
    print(f"{notice} notices, {pages} pages, {sum(persons_by.values())} persons, {len(quarantine)} bad lines")


def write_month(a, i, year, month, round_, notice, layouts, accounted, quarantine, persons_by, identities, days_by):
    """Writes the notices of one month and notes what each holds; returns the number of the last notice."""
    # A rising trend with a yearly swing: more allocations in late summer and autumn.
    expected = 22 + 0.6 * i + 9 * [0.2, 0.1, 0.3, 0.5, 0.6, 0.8, 1.0, 1.2, 1.3, 1.1, 0.7, 0.4][month - 1]
    count = max(4, round(rng.gauss(expected, 3)))
    # September 2024 brings one long collective notice that runs over several portrait pages.
    collective = (year, month) == (2024, 9)
    count += 70 if collective else 0
    people = [person(year, month) for _ in range(count)]
    # Split the month's persons over one to three notices.
    parts = 1 if collective else rng.randint(1, 3)
    bounds = sorted(rng.sample(range(1, count), parts - 1)) if parts > 1 else []
    for k, chunk in enumerate(zip([0] + bounds, bounds + [count]), 1):
        batch = people[chunk[0]:chunk[1]]
        notice += 1
        layout = "portrait" if collective else layouts[notice % len(layouts)]
        if notice % 7 == 3:
            batch[0]["birth"] = "31.02." + batch[0]["birth"][-4:]
            batch[0]["problem"] = ("Geburtsdatum", batch[0]["birth"], "invalid date")
        if notice % 11 == 5:
            batch[-1]["country"] = "Atlantis"
            batch[-1]["problem"] = ("Herkunftsland", "Atlantis", "unknown member")
        number = f"{year}/{notice:03d}"
        name = f"verteilung_{year}-{month:02d}_{k}.pdf" if round_ == 0 else \
            f"verteilung_{year}-{month:02d}_r{round_}_{k}.pdf"
        tally, pages = write_notice(os.path.join(a.out, name), number, batch, layout)
        accepted = sum(p["lines"] for p in batch if not p["problem"])
        rejected = sum(p["lines"] for p in batch if p["problem"])
        lines = accepted + rejected + sum(tally.values())
        accounted.append([name, layout, lines, accepted, rejected] + [tally[r] for r in sorted(tally)] + [pages])
        for p in batch:
            identities.add((p["surname"], p["first"], p["birth"]))
            if p["problem"]:
                quarantine.append([name, *p["problem"]])
            else:
                key = (p["month"], p["sex"], p["continent"])
                persons_by[key] = persons_by.get(key, 0) + 1
                waited = (dt.datetime.strptime(p["alloc"], "%d.%m.%Y")
                          - dt.datetime.strptime(p["arrival"], "%d.%m.%Y")).days
                days_by.setdefault(p["month"], []).append(waited)
    return notice


def write_expected(a, accounted, quarantine, persons_by, identities, days_by):
    """The figures the tests expect, from the records above."""
    expected = a.expected
    os.makedirs(expected, exist_ok=True)
    with open(os.path.join(expected, "zuweisungen_lines.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "layout", "lines", "accepted", "rejected"] + sorted(
            ["title", "header", "header (repeated)", "page header", "page without the table", "page footer",
             "footer"]) + ["pages"])
        w.writerows(accounted)
    with open(os.path.join(expected, "zuweisungen_quarantine.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "column", "value", "problem"])
        w.writerows(quarantine)
    with open(os.path.join(expected, "zuweisungen_days_by_month.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["month", "allocations", "days", "median_days"])
        w.writerows([m, len(days_by[m]), sum(days_by[m]), f"{statistics.median(days_by[m]):g}"] for m in sorted(days_by))
    with open(os.path.join(expected, "zuweisungen_names.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["surname", "first_name", "birth"])
        w.writerows(sorted(identities))
    with open(os.path.join(expected, "zuweisungen_by_month_sex_region.csv"), "w", newline="",
              encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["month", "sex", "continent", "persons"])
        for key in sorted(persons_by):
            w.writerow([*key, persons_by[key]])


if __name__ == "__main__":
    main()
