#!/usr/bin/env python3
"""Generates the synthetic sample exports of the kubus sample project, and the expected numbers for the tests.

No real person is in here: names, birth dates and person numbers are drawn at random (seed fixed).
The expected numbers in expected/ come from this script's own records, never from kubus.

Writes:
  auslaenderbehoerde/neuzugewanderte_YYYY-MM.csv   the foreigners' authority's monthly list, 2023-01 .. 2024-12:
      Windows-1252, ';', German headers, dd.mm.yyyy dates, decimal commas, names and streets, districts spelled
      inconsistently, a trailing 'Summe' line in every file, and a few deliberately broken rows.
  kurstraeger/sprachkursangebote_2023_2024.xlsx     course offers, title row and blank row above the header.
  expected/persons_by_district_2024-06.csv          distinct persons per district key in June 2024.
  expected/quarantine.csv                           every line kubus must reject: file, line, column, reason.
  expected/skipped.csv                              every line kubus must skip on purpose: file, line, reason.
  expected/seats_by_level_2024.csv                  offers and seats per language level for courses starting 2024.
  expected/newcomers_by_month.csv                   per month: records, distinct persons, persons below B1, and
                                                    the need (below B1 and in no course).
  expected/persons_by_year.csv                      distinct persons (and below B1) per year and over both years.
  expected/need_seats_2024-06.csv                   per district and level: the need in June 2024 and the seats of
                                                    courses starting in 2024 (either may be 0).
  expected/persons_by_age_group_2024-06.csv         distinct persons in June 2024 by the age groups of the
                                                    integration courses and by minor/adult.

Usage: python3 sample-data/generate.py   (needs openpyxl)
"""
import calendar
import csv
import datetime as dt
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20240630)

# District key -> spellings the authority's software produces (official label first).
DISTRICTS = {
    "01": ["Innenstadt Ost", "Innenstadt-Ost", "INNENSTADT OST", "KL-Ost"],
    "02": ["Innenstadt Südwest", "Innenstadt-Südwest", "Innenstadt SW"],
    "03": ["Innenstadt West/Kotten", "Innenstadt-West / Kotten", "Kotten"],
    "04": ["Innenstadt Nord/Kaiserberg", "Innenstadt-Nord", "Kaiserberg"],
    "05": ["Grübentälchen/Volkspark", "Grübentälchen", "grübentälchen / volkspark"],
    "06": ["Betzenberg", "BETZENBERG", " Betzenberg "],
    "07": ["Lämmchesberg/Universitätswohnstadt", "Lämmchesberg/Uniwohnstadt", "Uniwohnstadt"],
    "08": ["Bännjerrück/Karl-Pfaff-Siedlung", "Bännjerrück", "Karl-Pfaff-Siedlung"],
    "09": ["Kaiserslautern-West", "KL-West", "Kaiserslautern West"],
    "10": ["Erzhütten/Wiesenthalerhof", "Erzhütten", "Wiesenthalerhof"],
    "11": ["Einsiedlerhof"],
    "12": ["Morlautern"],
    "13": ["Erlenbach"],
    "14": ["Mölschbach"],
    "15": ["Dansenberg"],
    "16": ["Hohenecken"],
    "17": ["Siegelbach"],
    "18": ["Erfenbach"],
}
DISTRICT_WEIGHTS = [14, 10, 12, 9, 8, 6, 5, 7, 13, 3, 3, 1, 1, 1, 2, 2, 2, 1]
NATIONS = [("Syrien", 18), ("Afghanistan", 12), ("Ukraine", 22), ("Türkei", 8), ("Irak", 6), ("Iran", 3),
           ("Rumänien", 6), ("Bulgarien", 4), ("Polen", 3), ("Kosovo", 2), ("Albanien", 2), ("Eritrea", 3),
           ("Somalia", 2), ("Nigeria", 2), ("Indien", 3), ("Venezuela", 1), ("Kolumbien", 1), ("Vietnam", 1),
           ("Russische Föderation", 1)]
STATUS_BY_NATION = {"Ukraine": ["§ 24"], "Rumänien": ["EU-Freizügigkeit"], "Bulgarien": ["EU-Freizügigkeit"],
                    "Polen": ["EU-Freizügigkeit"]}
STATUS_OTHER = ["Aufenthaltsgestattung", "Aufenthaltserlaubnis (Schutz)", "Duldung", "Familiennachzug",
                "Erwerbstätigkeit", "Studium"]
SEX = [("männlich", 54), ("weiblich", 45), ("divers", 1)]
LEVELS = ["", "A1", "A2", "B1", "B2", "C1"]
PROVIDERS = ["VHS Kaiserslautern", "Sprachschule Westpfalz", "Bildungswerk Lauter", "Kolleg Barbarossa",
             "Integrationszentrum Pfalz", "Akademie am Betzenberg"]
PROVIDER_KEYS = {p: f"P0{i + 1}" for i, p in enumerate(PROVIDERS)}
SURNAMES = ["Haddad", "Karimi", "Kovalenko", "Yilmaz", "Hussein", "Rahimi", "Popescu", "Ivanova", "Nowak",
            "Berisha", "Hoxha", "Tesfaye", "Warsame", "Okafor", "Sharma", "Pérez", "Nguyen", "Petrenko", "Shevchenko",
            "Demir", "Ahmadi", "Mahmoud", "Georgiev", "Müller"]
GIVEN = ["Amal", "Omar", "Olena", "Mehmet", "Zainab", "Ali", "Ioana", "Dmytro", "Anna", "Arben", "Selam", "Hodan",
         "Chinedu", "Priya", "Lucía", "Minh", "Sofiia", "Yusuf", "Fatima", "Andrii", "Maryam", "Elif"]
STREETS = ["Pariser Straße", "Mannheimer Straße", "Eisenbahnstraße", "Fackelstraße", "Königstraße",
           "Trippstadter Straße", "Logenstraße", "Merkurstraße", "Pfaffstraße", "Hauptstraße"]
MONTHS = [(y, m) for y in (2023, 2024) for m in range(1, 13)]
HEADER = ["Personennummer", "Familienname", "Vorname", "Geburtsdatum", "Geschlecht", "Staatsangehörigkeit",
          "Straße", "Hausnummer", "Stadtteil", "Aufenthaltsstatus", "Sprachniveau", "Kursteilnahme", "Kursträger",
          "Kursstunden", "Stichtag"]


def pick(weighted):
    items, weights = zip(*weighted)
    return rng.choices(items, weights)[0]


def month_index(y, m):
    return (y - 2023) * 12 + m - 1


def make_persons():
    persons = []
    for n in range(1800):
        nation = pick(NATIONS)
        arrival = rng.randrange(-12, 24)  # months relative to 2023-01; negative = before the window
        stay = rng.randrange(3, 19)
        age_at_arrival = min(80, max(0, int(rng.gammavariate(3.0, 9.0))))
        birth = dt.date(2023, 1, 1) - dt.timedelta(days=int((age_at_arrival - arrival / 12) * 365.25) + rng.randrange(365))
        level0 = rng.choices(range(5), [30, 25, 20, 15, 10])[0]
        persons.append({
            "nr": f"ABH-{100000 + n * 7:06d}",
            "surname": rng.choice(SURNAMES),
            "given": rng.choice(GIVEN),
            "birth": birth,
            "sex": pick(SEX),
            "nation": nation,
            "status": rng.choice(STATUS_BY_NATION.get(nation, STATUS_OTHER)),
            "street": rng.choice(STREETS),
            "house": str(rng.randrange(1, 140)),
            "district": rng.choices(list(DISTRICTS), DISTRICT_WEIGHTS)[0],
            "from": arrival,
            "to": arrival + stay,
            "level0": level0,
            "provider": rng.choice(PROVIDERS),
            "course_from": arrival + rng.randrange(1, 6),
            "course_len": rng.randrange(4, 12) if rng.random() < 0.6 else 0,
        })
    return persons


def age_at(birth, day):
    """Full years between two dd.mm.yyyy dates."""
    b, d = dt.datetime.strptime(birth, "%d.%m.%Y").date(), dt.datetime.strptime(day, "%d.%m.%Y").date()
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def fmt_date(d):
    return d.strftime("%d.%m.%Y")


def row_for(p, y, m):
    idx = month_index(y, m)
    in_course = p["course_from"] <= idx < p["course_from"] + p["course_len"]
    level = min(5, p["level0"] + max(0, idx - p["course_from"]) // 6 if p["course_len"] else p["level0"])
    stichtag = dt.date(y, m, calendar.monthrange(y, m)[1])
    hours = round(rng.uniform(40, 100) * 2) / 2 if in_course else 0.0
    district = p["district"]
    if idx > p["from"] + 18 and int(p["nr"][-3:]) % 5 == 0:  # some move after a year and a half
        district = f"{(int(district) % 18) + 1:02d}"
    return {
        "Personennummer": p["nr"], "Familienname": p["surname"], "Vorname": p["given"],
        "Geburtsdatum": fmt_date(p["birth"]), "Geschlecht": p["sex"], "Staatsangehörigkeit": p["nation"],
        "Straße": p["street"], "Hausnummer": p["house"],
        "Stadtteil": rng.choice(DISTRICTS[district]), "district_key": district,
        "Aufenthaltsstatus": p["status"], "Sprachniveau": LEVELS[level],
        "Kursteilnahme": "ja" if in_course else "nein", "Kursträger": p["provider"] if in_course else "",
        "Kursstunden": f"{hours:.1f}".replace(".", ",") if in_course else "",
        "Stichtag": fmt_date(stichtag),
    }


# Deliberately broken rows: (year, month) -> list of (how, column, reason). Each replaces one good row's value.
BREAKAGE = {
    (2023, 11): [("impossible_birth", "Geburtsdatum", "invalid date")],
    (2024, 6): [("impossible_birth", "Geburtsdatum", "invalid date"),
                ("unknown_district", "Stadtteil", "unknown member"),
                ("missing_person", "Personennummer", "missing value"),
                ("empty_line", "", "empty line")],
}


def main():
    persons = make_persons()
    abh = os.path.join(HERE, "auslaenderbehoerde")
    os.makedirs(abh, exist_ok=True)
    os.makedirs(os.path.join(HERE, "expected"), exist_ok=True)
    quarantine = []
    skipped = []
    june_persons = {}
    accepted = []  # (year, month, person, district key, level key, in course, age) of every row kubus must accept
    for y, m in MONTHS:
        idx = month_index(y, m)
        rows = [row_for(p, y, m) for p in persons if p["from"] <= idx < p["to"]]
        # The authority's software lists a few persons twice (e.g. after an address correction).
        for dup in rng.sample(rows, 3):
            rows.append(dict(dup, Stadtteil=rng.choice(DISTRICTS[dup["district_key"]])))
        rng.shuffle(rows)
        name = f"neuzugewanderte_{y}-{m:02d}.csv"
        broken_rows = {}
        for k, (how, column, reason) in enumerate(BREAKAGE.get((y, m), [])):
            at = 40 + k * 97
            broken_rows[at] = (how, column, reason)
            if how == "impossible_birth":
                rows[at]["Geburtsdatum"] = "31.02.1991"
            elif how == "unknown_district":
                rows[at]["Stadtteil"] = "Innenstadt Mitte"
            elif how == "missing_person":
                rows[at]["Personennummer"] = ""
        lines = [";".join(HEADER)]
        for i, r in enumerate(rows):
            how = broken_rows.get(i, (None,))[0]
            if how == "empty_line":
                lines.append("")
                skipped.append((name, len(lines), "empty line"))
            if how and how != "empty_line":
                _, column, reason = broken_rows[i]
                quarantine.append((name, len(lines) + 1, column, reason))
            else:
                accepted.append((y, m, r["Personennummer"], r["district_key"], r["Sprachniveau"] or "none",
                                 r["Kursteilnahme"] == "ja", age_at(r["Geburtsdatum"], r["Stichtag"])))
                if (y, m) == (2024, 6):
                    june_persons.setdefault(r["district_key"], set()).add(r["Personennummer"])
            lines.append(";".join(r[h] for h in HEADER))
        lines.append(f"Summe;{len(rows)} Datensätze" + ";" * (len(HEADER) - 2))
        skipped.append((name, len(lines), "total line"))
        with open(os.path.join(abh, name), "w", encoding="cp1252", newline="") as f:
            f.write("\r\n".join(lines) + "\r\n")

    with open(os.path.join(HERE, "expected", "persons_by_district_2024-06.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["district", "persons"])
        for key in sorted(june_persons):
            w.writerow([key, len(june_persons[key])])
    with open(os.path.join(HERE, "expected", "quarantine.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "line", "column", "problem"])
        w.writerows(sorted(quarantine))
    with open(os.path.join(HERE, "expected", "skipped.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "line", "reason"])
        w.writerows(sorted(skipped))
    below_b1 = {"none", "A1", "A2"}
    with open(os.path.join(HERE, "expected", "newcomers_by_month.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "records", "persons", "persons_below_b1", "need"])
        for y, m in MONTHS:
            rows = [a for a in accepted if (a[0], a[1]) == (y, m)]
            w.writerow([f"{y}-{m:02d}", len(rows), len({a[2] for a in rows}),
                        len({a[2] for a in rows if a[4] in below_b1}),
                        len({a[2] for a in rows if a[4] in below_b1 and not a[5]})])
    with open(os.path.join(HERE, "expected", "persons_by_year.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["year", "persons", "persons_below_b1"])
        for year in ["2023", "2024", "all"]:
            rows = [a for a in accepted if year == "all" or a[0] == int(year)]
            w.writerow([year, len({a[2] for a in rows}), len({a[2] for a in rows if a[4] in below_b1})])
    groups = {("course_age", "u16"): lambda a: a < 16, ("course_age", "16-26"): lambda a: 16 <= a < 27,
              ("course_age", "27+"): lambda a: a >= 27, ("majority", "minor"): lambda a: a < 18,
              ("majority", "adult"): lambda a: a >= 18}
    with open(os.path.join(HERE, "expected", "persons_by_age_group_2024-06.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hierarchy", "group", "persons"])
        june = [a for a in accepted if (a[0], a[1]) == (2024, 6)]
        for (hierarchy, group), test in groups.items():
            w.writerow([hierarchy, group, len({a[2] for a in june if test(a[6])})])
    need = {}
    for y, m, nr, district, level, in_course, _ in accepted:
        if (y, m) == (2024, 6) and level in below_b1 and not in_course:
            need.setdefault((district, level), set()).add(nr)
    write_offers({k: len(v) for k, v in need.items()})


def write_offers(need):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Angebote"
    ws["A1"] = "Sprachkursangebote der Kursträger in Kaiserslautern, 2023–2024"
    ws["A1"].font = Font(bold=True, size=14)
    header = ["Träger", "Stadtteil", "Niveau", "Kursart", "Kursbeginn", "Plätze"]
    ws.append([])
    ws.append(header)
    for c in ws[3]:
        c.font = Font(bold=True)
    types = ["Integrationskurs", "Jugendintegrationskurs", "Alphabetisierungskurs", "Berufssprachkurs",
             "Erstorientierungskurs"]
    seats_by_level = {}
    seats = {}
    for _ in range(180):
        provider = rng.choice(PROVIDERS)
        district = rng.choices(list(DISTRICTS), DISTRICT_WEIGHTS)[0]
        level = rng.choices(["A1", "A2", "B1", "B2", "C1"], [30, 30, 25, 10, 5])[0]
        kind = rng.choice(types)
        y, m = rng.choice(MONTHS)
        n = rng.randrange(8, 26)
        ws.append([provider, DISTRICTS[district][0], level, kind, dt.datetime(y, m, rng.randrange(1, 28)), n])
        ws.cell(row=ws.max_row, column=5).number_format = "DD.MM.YYYY"
        if y == 2024:
            offers, total = seats_by_level.get(level, (0, 0))
            seats_by_level[level] = (offers + 1, total + n)
            seats[(district, level)] = seats.get((district, level), 0) + n
    out = os.path.join(HERE, "kurstraeger")
    os.makedirs(out, exist_ok=True)
    wb.properties.created = dt.datetime(2025, 1, 15)
    wb.properties.modified = dt.datetime(2025, 1, 15)
    wb.save(os.path.join(out, "sprachkursangebote_2023_2024.xlsx"))
    with open(os.path.join(HERE, "expected", "seats_by_level_2024.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["language_level", "offers", "seats"])
        for level in sorted(seats_by_level):
            w.writerow([level, *seats_by_level[level]])
    with open(os.path.join(HERE, "expected", "need_seats_2024-06.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["district", "language_level", "need", "seats"])
        for key in sorted(set(need) | set(seats)):
            w.writerow([*key, need.get(key, 0), seats.get(key, 0)])


if __name__ == "__main__":
    main()
