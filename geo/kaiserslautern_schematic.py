#!/usr/bin/env python3
"""Writes geo/kaiserslautern_schematisch.geojson: the sample project's 18 Kaiserslautern districts as squares on a
grid that keeps their rough relative position (north up; Innenstadt in the middle, the Ortsbezirke around it). It
is a schematic layout for the synthetic sample data, not the city's boundaries: its attribution says so under every
map. Rings are clockwise, as d3-geo expects. Usage: python3 geo/kaiserslautern_schematic.py
"""
import json
import os

# (district key, column, row): row 0 is the north.
GRID = [
    ("17", 1, 0), ("18", 2, 0), ("13", 3, 0), ("12", 4, 0),
    ("11", 0, 1), ("09", 1, 1), ("03", 2, 1), ("04", 3, 1), ("10", 4, 1),
    ("08", 1, 2), ("02", 2, 2), ("01", 3, 2), ("05", 4, 2),
    ("16", 1, 3), ("06", 2, 3), ("07", 3, 3), ("15", 4, 3),
    ("14", 3, 4),
]
WEST, NORTH, WIDTH, HEIGHT, GAP = 7.66, 49.50, 0.03, 0.02, 0.002


def square(column, row):
    x0, y1 = WEST + column * WIDTH, NORTH - row * HEIGHT
    x1, y0 = x0 + WIDTH - GAP, y1 - HEIGHT + GAP
    ring = [(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)]
    return [[round(x, 5), round(y, 5)] for x, y in ring]


def main():
    features = [
        {"type": "Feature", "properties": {"key": key}, "geometry": {"type": "Polygon", "coordinates": [square(c, r)]}}
        for key, c, r in GRID
    ]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kaiserslautern_schematisch.geojson")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"type": "FeatureCollection", "features": features}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
