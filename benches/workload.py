"""The reference workload of ../shared/peers as office exports: the newcomers (one row per person and month, the
peers' distributions, seed 42) as the foreigners' authority writes them (Windows-1252, ';', decimal commas,
dd.mm.yyyy, German headers), course offers as the providers write them, and a scratch kubus project that ingests
both. Shared by the ingest benchmark and the query comparison.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np

DISTRICTS = ["Innenstadt-West/Kotten", "Innenstadt-Nord/Kaiserberg", "Grübentälchen/Volkspark",
             "Betzenberg", "Lämmchesberg/Uniwohnstadt", "Bännjerrück/Karl-Pfaff-Siedlung",
             "Kaiserslautern-West", "Kaiserslautern-Ost", "Innenstadt-Südwest", "Innenstadt-Ost",
             "Morlautern", "Erlenbach", "Dansenberg", "Hohenecken", "Erfenbach", "Siegelbach",
             "Mölschbach", "Einsiedlerhof"]
LEVELS = ["none", "A1", "A2", "B1", "B2", "C1", "C2"]
STATUS = ["Asylbewerber", "anerkannt", "subsidiär", "geduldet", "EU-Freizügigkeit",
          "Familiennachzug", "Fachkraft", "Studium", "Ukraine §24"]
NATIONS = [f"N{i:03d}" for i in range(120)]
HEADER = ["Personennummer", "Stichtag", "Stadtteil", "Alter", "Geschlecht", "Staatsangehörigkeit",
          "Aufenthaltsstatus", "Sprachniveau", "Kursteilnahme", "Kursträger", "Kursstunden"]


def generate(path, rows, seed=42):
    """The peers' distributions (seed 42), written as the authority's CSV, in chunks."""
    rng = np.random.default_rng(seed)
    months = [(y, m) for y in range(2015, 2027) for m in range(1, 13)]
    dist_p = rng.dirichlet(np.ones(len(DISTRICTS)) * 2)
    nat_p = rng.zipf(1.6, len(NATIONS)).astype(float)
    nat_p /= nat_p.sum()
    stichtag = np.array([f"01.{m:02d}.{y}" for y, m in months])
    with open(path, "w", encoding="cp1252", newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        chunk = 500_000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            pid = rng.integers(0, max(1, rows // 24), n)
            month = stichtag[rng.integers(0, len(months), n)]
            district = np.array(DISTRICTS)[rng.choice(len(DISTRICTS), n, p=dist_p)]
            age = np.clip(rng.gamma(3.0, 9.0, n), 0, 99).astype(int)
            sex = rng.choice(np.array(["m", "w", "d"]), n, p=[0.55, 0.445, 0.005])
            nat = np.array(NATIONS)[rng.choice(len(NATIONS), n, p=nat_p)]
            status = np.array(STATUS)[rng.integers(0, len(STATUS), n)]
            level = np.array(LEVELS)[rng.choice(len(LEVELS), n, p=[.25, .2, .2, .17, .1, .05, .03])]
            course = rng.random(n) < 0.3
            provider = np.where(rng.random(n) < 0.3, rng.integers(1, 41, n), 0)
            hours = np.round(rng.random(n) * 100, 1)
            f.write("".join(
                f"{p};{mo};{d};{a};{s};{na};{st};{lv};{'ja' if c else 'nein'};{f'P{pr:02d}' if pr else ''};{str(h).replace('.', ',')}\r\n"
                for p, mo, d, a, s, na, st, lv, c, pr, h in zip(pid, month, district, age, sex, nat, status, level, course, provider, hours)
            ))


def split_month(csv, base, month, stichtag="01.06.2020", limit=None):
    """A newcomers file without one month (`base`) and that month's facts (`month`; the first `limit` of them),
    each with the header. Returns the number of the month's facts written."""
    with open(csv, "rb") as src, open(base, "wb") as b, open(month, "wb") as m:
        header = src.readline()
        b.write(header)
        m.write(header)
        needle, taken = f";{stichtag};".encode(), 0
        for line in src:
            if needle not in line:
                b.write(line)
            elif limit is None or taken < limit:
                m.write(line)
                taken += 1
    return taken


def member(level, key, label, parent=None):
    text = f'\n[[members]]\nlevel = "{level}"\nkey = "{key}"\nlabel = "{label}"\n'
    return text + (f'parent = "{parent}"\n' if parent else "")


def enumerated(name, keys_labels, aliases=None):
    text = f'name = "{name}"\nlabel = "{name}"\n\n[[levels]]\nname = "{name}"\nlabel = "{name}"\n'
    for key, label in keys_labels:
        text += member(name, key, label)
    return text


def time_dimension():
    return ('name = "time"\nlabel = "Zeit"\nkind = "time"\nyears = [2015, 2026]\n'
            + "".join(f'\n[[levels]]\nname = "{lv}"\nlabel = "{lv}"\n' for lv in ["year", "quarter", "month"]))


# The age bands of the reference query q03.
AGE_BANDS = [("0-5", 0, 6), ("6-15", 6, 16), ("16-17", 16, 18), ("18-24", 18, 25), ("25-64", 25, 65), ("65+", 65, None)]

MEASURES = [
    ("records", 'aggregate = "count"'),
    ("persons", 'aggregate = "count_distinct"\ncolumn = "person_id"'),
    ("hours", 'aggregate = "sum"\ncolumn = "course_hours"'),
    ("avg_age", 'aggregate = "avg"\ncolumn = "age_years"'),
    ("records_below_b1", 'aggregate = "count"\nfilter = ["language_level<B1"]'),
    ("need", 'aggregate = "count_distinct"\ncolumn = "person_id"\nfilter = ["language_level<B1", "in_course=nein"]'),
    ("share_below_b1", 'ratio = ["records_below_b1", "records"]'),
    ("records_change", 'change = "records"\nagainst = "previous"'),
]

# Rollups for the monitoring questions of the reference workload (name, levels, measures; none: every aggregate).
ROLLUPS = [
    ("month_district", ["month", "district"], ["records", "hours"]),
    ("year_district_level", ["month.year", "district", "language_level"], ["records", "records_below_b1"]),
    ("district_age_band", ["district", "age.age_band"], ["persons"]),
    ("district_nationality", ["district", "nationality"], ["records"]),
    ("need_month_district_level", ["month", "district", "language_level"], ["need"]),
    ("dice", ["district", "residence_status", "sex", "language_level", "in_course"], ["records", "avg_age"]),
]
OFFER_ROLLUPS = [("month_district_level", ["start_month", "district", "language_level"], ["seats"])]


def rollups(declared):
    return "".join(f'\n[[rollups]]\nname = "{n}"\nlevels = {levels!r}\nmeasures = {measures!r}\n'.replace("'", '"')
                   for n, levels, measures in declared)


def project(root, with_rollups=True):
    """A scratch kubus project with the peers' dimensions, the newcomers and course-offers cubes, their sources
    (the authority's CSV, the providers' CSV) and the drill-across cube of demand against supply; with rollups for
    the reference queries unless `with_rollups` is false (the ingest benchmark times the ingest alone)."""
    for sub in ["dimensions", "cubes", "sources"]:
        os.makedirs(os.path.join(root, "cube-schemas", sub), exist_ok=True)
    # The comparison reads exact numbers, as the statistics office may; other roles get disclosure control.
    open(os.path.join(root, "kubus.toml"), "w").write('name = "bench"\n\n[roles.statistik]\nbypass_disclosure = true\nsql = true\n')
    dims = {
        "district": enumerated("district", [(f"D{i + 1:02d}", d) for i, d in enumerate(DISTRICTS)]),
        "sex": enumerated("sex", [("m", "männlich"), ("w", "weiblich"), ("d", "divers")]),
        "nationality": enumerated("nationality", [(n, n) for n in NATIONS]),
        "residence_status": enumerated("residence_status", [(f"S{i + 1}", s) for i, s in enumerate(STATUS)]),
        "language_level": "ordered = true\n" + enumerated("language_level", [(lv, lv) for lv in LEVELS]),
        "in_course": enumerated("in_course", [("ja", "ja"), ("nein", "nein")]),
        "provider": enumerated("provider", [("none", "kein Träger")] + [(f"P{i:02d}", f"Träger {i}") for i in range(1, 41)]),
        "time": time_dimension(),
        "age": 'name = "age"\nlabel = "Alter"\nkind = "age"\nmax_age = 99\n'
               '\n[[levels]]\nname = "age_band"\nlabel = "Altersgruppe"\n\n[[levels]]\nname = "age_year"\nlabel = "Alter"\n'
               + "".join(f'\n[[bands]]\nkey = "{k}"\nlabel = "{k}"\nfrom = {a}\n' + (f"to = {b}\n" if b else "")
                         for k, a, b in AGE_BANDS),
    }
    for name, text in dims.items():
        open(os.path.join(root, "cube-schemas", "dimensions", name + ".toml"), "w").write(text)
    roles = ["month", "district", "age", "sex", "nationality", "residence_status", "language_level", "in_course", "provider"]
    cube = 'name = "newcomers"\nlabel = "Neuzugewanderte"\n'
    for r in roles:
        cube += f'\n[[dimensions]]\nname = "{r}"\n' + ('dimension = "time"\n' if r == "month" else "")
    for name, ty in [("person_id", "string"), ("course_hours", "decimal"), ("age_years", "integer")]:
        cube += f'\n[[columns]]\nname = "{name}"\ntype = "{ty}"\n'
    for name, body in MEASURES:
        cube += f'\n[[measures]]\nname = "{name}"\nlabel = "{name}"\n{body}\n'
    if with_rollups:
        cube += rollups(ROLLUPS)
    open(os.path.join(root, "cube-schemas", "cubes", "newcomers.toml"), "w").write(cube)
    offers = ('name = "course_offers"\nlabel = "Kursangebote"\n'
              + "".join(f'\n[[dimensions]]\nname = "{r}"\n' for r in ["provider", "district", "language_level"])
              + '\n[[dimensions]]\nname = "start_month"\ndimension = "time"\n'
              + '\n[[columns]]\nname = "seats"\ntype = "integer"\n'
              + '\n[[measures]]\nname = "seats"\nlabel = "Plätze"\naggregate = "sum"\ncolumn = "seats"\n'
              + (rollups(OFFER_ROLLUPS) if with_rollups else ""))
    open(os.path.join(root, "cube-schemas", "cubes", "course_offers.toml"), "w").write(offers)
    demand = ('name = "language_demand"\nlabel = "Bedarf und Angebot"\nacross = ["newcomers", "course_offers"]\n'
              '\n[[measures]]\nname = "need"\nlabel = "Bedarf"\nfrom = "newcomers.need"\n'
              '\n[[measures]]\nname = "seats"\nlabel = "Plätze"\nfrom = "course_offers.seats"\n'
              '\n[[measures]]\nname = "gap"\nlabel = "Lücke"\ndifference = ["seats", "need"]\n')
    open(os.path.join(root, "cube-schemas", "cubes", "language_demand.toml"), "w").write(demand)
    source = ('name = "abh"\ncube = "newcomers"\n\n[format]\ntype = "csv"\nencoding = "windows-1252"\ndelimiter = ";"\n'
              'decimal_separator = ","\ndate_formats = ["%d.%m.%Y"]\n')
    fields = {"person_id": 'text = "Personennummer"', "month": 'date = "Stichtag"', "district": 'member = "Stadtteil"',
              "age": 'member = "Alter"', "age_years": 'number = "Alter"', "sex": 'member = "Geschlecht"',
              "nationality": 'member = "Staatsangehörigkeit"', "residence_status": 'member = "Aufenthaltsstatus"',
              "language_level": 'member = "Sprachniveau"', "in_course": 'member = "Kursteilnahme"',
              "provider": 'member = "Kursträger"\nif_empty = "none"', "course_hours": 'number = "Kursstunden"'}
    for target, body in fields.items():
        source += f"\n[fields.{target}]\n{body}\n"
    open(os.path.join(root, "cube-schemas", "sources", "abh.toml"), "w", encoding="utf-8").write(source)
    source = ('name = "offers"\ncube = "course_offers"\n\n[format]\ntype = "csv"\nencoding = "windows-1252"\ndelimiter = ";"\n'
              'date_formats = ["%d.%m.%Y"]\n')
    fields = {"provider": 'member = "Träger"', "district": 'member = "Stadtteil"', "language_level": 'member = "Niveau"',
              "start_month": 'date = "Kursbeginn"', "seats": 'number = "Plätze"'}
    for target, body in fields.items():
        source += f"\n[fields.{target}]\n{body}\n"
    open(os.path.join(root, "cube-schemas", "sources", "offers.toml"), "w", encoding="utf-8").write(source)


def newcomers_csv(work, rows):
    """The path of the newcomers file at `rows` rows in `work`, generated there once."""
    path = os.path.join(os.path.abspath(work), f"newcomers_{rows}.csv")
    if not os.path.exists(path):
        print(f"generating {rows} rows → {path}", flush=True)
        generate(path, rows)
    return path


def prepare(work, rows, root, with_rollups=True):
    """The reference workload at `rows` rows, generated once into `work` (the offers every time), and a new project
    at `root` for it; returns the paths of the two CSV files."""
    newcomers = newcomers_csv(work, rows)
    offers_csv = os.path.join(work, "offers.csv")
    generate_offers(offers_csv)
    shutil.rmtree(root, ignore_errors=True)
    project(root, with_rollups)
    return newcomers, offers_csv


def ingest(kubus, root, newcomers_csv, offers_csv):
    """Ingests the workload's two files into the project at `root`."""
    for source, path in [("abh", newcomers_csv), ("offers", offers_csv)]:
        p = subprocess.run([kubus, "-C", root, "ingest", source, path], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"kubus ingest {source} failed:\n{p.stdout}\n{p.stderr}")
        print(f"kubus ingest {source}: {[l for l in p.stdout.splitlines() if l.startswith('lines ')][-1]}", flush=True)


def generate_offers(path, seed=43):
    """Course offers in the peers' shape (200 per district): provider, district, level, start month, seats."""
    rng = np.random.default_rng(seed)
    months = [(y, m) for y in range(2015, 2027) for m in range(1, 13)]
    m = 200 * len(DISTRICTS)
    with open(path, "w", encoding="cp1252", newline="") as f:
        f.write("Träger;Stadtteil;Niveau;Kursbeginn;Plätze\r\n")
        for provider, district, level, month, seats in zip(
                rng.integers(1, 41, m), np.array(DISTRICTS)[rng.integers(0, len(DISTRICTS), m)],
                np.array(LEVELS[1:])[rng.integers(0, 6, m)], rng.integers(0, len(months), m), rng.integers(8, 25, m)):
            y, mo = months[month]
            f.write(f"P{provider:02d};{district};{level};01.{mo:02d}.{y};{seats}\r\n")


def url_of(base, query):
    """A cube query as the GET URL of `/api/v1/query`, in the CLI's parameter names."""
    params = [("cube", query["cube"])]
    params += [("m", m) for m in query["measures"]]
    params += [("d", d) for d in query.get("drilldowns", [])]
    params += [("c", c) for c in query.get("cuts", [])]
    params += [("order", o) for o in query.get("order", [])]
    if query.get("totals"):
        params.append(("totals", "true"))
    if "limit" in query:
        params.append(("limit", str(query["limit"])))
    return f"{base}/api/v1/query?{urllib.parse.urlencode(params)}"


def bench_user(kubus, root, settings=""):
    """A user `bench` of the project at `root` in a group acting as the statistics office (with further `settings`
    appended to its kubus.toml); returns its token."""
    with open(os.path.join(root, "kubus.toml"), "a") as f:
        f.write('\n[groups.bench]\nrole = "statistik"\n' + settings)
    subprocess.run([kubus, "-C", root, "user", "add", "bench", "--group", "bench"], check=True, capture_output=True)
    return subprocess.run([kubus, "-C", root, "token", "create", "bench"], check=True, capture_output=True,
                          text=True).stdout.strip()


def serve(kubus, root, log):
    """`kubus serve` over the project at `root` on a free port, once it answers `/healthz`: (process, base URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([kubus, "-C", root, "serve", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    return server, base
