#!/usr/bin/env python3
"""Writes the reference dimensions for the real exports in this folder (needs openpyxl):

  ../../cube-schemas/dimensions/region.toml       Land → Kreis (AGS keys), Kreise as of 31.12.2022, from the XLSX
  ../../cube-schemas/dimensions/koeln_area.toml   Köln: city → Stadtbezirk → Stadtteil (raum_id), from the CSV
  ../../cube-schemas/dimensions/koeln_topic.toml  Köln: table → category (tab_id.zei_id), from the CSV

Only keys, names and the hierarchy are taken from the files; no number. Run it again when a newer export brings
new areas; kubus itself never invents members.
"""
import csv
import os

import openpyxl

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "cube-schemas", "dimensions")

LAENDER = [
    ("01", "Schleswig-Holstein", ["SH"]), ("02", "Hamburg", ["HH"]), ("03", "Niedersachsen", ["NI"]),
    ("04", "Bremen", ["HB"]), ("05", "Nordrhein-Westfalen", ["NW", "NRW"]), ("06", "Hessen", ["HE"]),
    ("07", "Rheinland-Pfalz", ["RP"]), ("08", "Baden-Württemberg", ["BW"]), ("09", "Bayern", ["BY"]),
    ("10", "Saarland", ["SL"]), ("11", "Berlin", ["BE", "BR"]), ("12", "Brandenburg", ["BB"]),
    ("13", "Mecklenburg-Vorpommern", ["MV"]), ("14", "Sachsen", ["SN"]), ("15", "Sachsen-Anhalt", ["ST"]),
    ("16", "Thüringen", ["TH"]),
]
KIND = {"KfS": "kreisfreie Stadt", "SK": "Stadtkreis", "LK": "Landkreis", "K": "Kreis", "RV": "Regionalverband"}


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def member(level, key, label, parent=None, aliases=()):
    out = f'\n[[members]]\nlevel = "{level}"\nkey = {q(key)}\nlabel = {q(label)}\n'
    if parent is not None:
        out += f"parent = {q(parent)}\n"
    if aliases:
        out += "aliases = [" + ", ".join(q(a) for a in aliases) + "]\n"
    return out


def region():
    ws = openpyxl.load_workbook(os.path.join(HERE, "bka_bevoelkerung_2023_kreise.xlsx")).active
    rows = [r for r in ws.iter_rows(min_row=7, values_only=True) if r[1]]
    names = [r[2] for r in rows]
    text = ('# Germany by Land and Kreis (AGS keys: 2 digits for the Land, 5 for the Kreis). Kreise as of 31.12.2022,\n'
            '# written by sample-data/realdata/dimensions.py from the Destatis table of Kreise. Names are not keys:\n'
            '# Kaiserslautern is a kreisfreie Stadt (07312) and a Landkreis (07335), so such names carry their kind.\n'
            'name = "region"\nlabel = "Gebiet"\nlabel_en = "Region"\ngeo = true\n\n'
            '[[levels]]\nname = "land"\nlabel = "Bundesland"\nlabel_en = "Federal state"\n\n'
            '[[levels]]\nname = "kreis"\nlabel = "Kreis"\nlabel_en = "District (Kreis)"\n')
    for key, label, aliases in LAENDER:
        text += member("land", key, label, aliases=aliases)
    for r in rows:
        ags, name, kind = r[1], r[2], r[3]
        if names.count(name) > 1:
            # The plain name stays an alias of both, so that it is reported as ambiguous, not unknown.
            text += member("kreis", ags, f"{name}, {KIND[kind]}", parent=ags[:2], aliases=[name])
        else:
            text += member("kreis", ags, name, parent=ags[:2])
    return text


def koeln():
    with open(os.path.join(HERE, "koeln_bevoelkerung_stadtteile_2005-2012.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    areas = sorted({(r["raum_id"], r["raum"]) for r in rows})
    area = ('# Köln by area: the city (000), its nine Stadtbezirke (001–009) and their Stadtteile (101–909, whose first\n'
            '# digit is the Stadtbezirk). Written by sample-data/realdata/dimensions.py from the city\'s open data.\n'
            '# The same name can sit on two levels (009 Mülheim, 901 Mülheim): resolve by key or with the level.\n'
            'name = "koeln_area"\nlabel = "Gebiet (Köln)"\nlabel_en = "Area (Cologne)"\ngeo = true\n\n'
            '[[levels]]\nname = "city"\nlabel = "Stadt"\nlabel_en = "City"\n\n'
            '[[levels]]\nname = "stadtbezirk"\nlabel = "Stadtbezirk"\nlabel_en = "Borough"\n'
            '# The city\'s boundaries (geo/README.md); the file numbers the Stadtbezirke 1…9 for 001…009.\n'
            'geometry = { file = "geo/koeln_stadtbezirke.geojson", key = "NUMMER", pad = 3, attribution = "Stadt Köln, Offene Daten Köln (CC BY)" }\n\n'
            '[[levels]]\nname = "stadtteil"\nlabel = "Stadtteil"\nlabel_en = "Quarter"\n'
            'geometry = { file = "geo/koeln_stadtteile.geojson", key = "STT_NR", attribution = "Stadt Köln, Offene Daten Köln (CC BY)" }\n')
    for key, label in areas:
        if key == "000":
            area += member("city", key, label)
        elif key.startswith("00"):
            area += member("stadtbezirk", key, label, parent="000")
        else:
            area += member("stadtteil", key, label, parent="00" + key[0])
    topics = sorted({(r["tab_id"], r["tabelle"], r["zei_id"], r["zeile"]) for r in rows}, key=lambda t: (t[0], int(t[2])))
    topic = ('# What a number of the Köln population table counts: the table (Einwohner nach Alter, …) and the line within\n'
             '# it. Categories of one table overlap ("darunter" lines) and do not add up to the table\'s total: sum\n'
             '# over areas and years, never over categories (`additive = false`: a query that would is refused, and\n'
             '# totals leave the categories apart). Written by sample-data/realdata/dimensions.py.\n'
             'name = "koeln_topic"\nlabel = "Merkmal (Köln)"\nlabel_en = "Topic (Cologne)"\nadditive = false\n\n'
             '[[levels]]\nname = "table"\nlabel = "Tabelle"\nlabel_en = "Table"\n\n'
             '[[levels]]\nname = "category"\nlabel = "Merkmal"\nlabel_en = "Category"\n')
    for tab in sorted({(t[0], t[1]) for t in topics}):
        topic += member("table", tab[0], tab[1])
    for tab_id, _, zei_id, zeile in topics:
        topic += member("category", f"{tab_id}.{zei_id}", zeile, parent=tab_id)
    return area, topic


def main():
    area, topic = koeln()
    for name, text in [("region", region()), ("koeln_area", area), ("koeln_topic", topic)]:
        with open(os.path.join(OUT, name + ".toml"), "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
