#!/usr/bin/env python3
"""Rendering check of the HTML report in a headless browser (Debian's chromium).

Usage: render_check.py CHROMIUM REPORT.html OUT.png
Renders the page to OUT.png and checks, with the standard library only, what a script can see:
  - the DOM after rendering holds the two inline SVG charts and the tables, and loads nothing from the network;
  - a font family the page asks for is installed (fc-list), so no fallback glyphs;
  - the screenshot is a real page: not blank, and nothing drawn into the right margin (no overflowing layout).
Exits 1 with the reason when a check fails.
"""
import re
import struct
import subprocess
import sys
import zlib


def png_pixels(path):
    """(width, height, rows of RGB(A) byte strings) of a non-interlaced 8-bit PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            channels = {2: 3, 6: 4}[colour]
            assert depth == 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    chromium, html, png = sys.argv[1:4]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", f"file://{html}"], capture_output=True, text=True, timeout=120).stdout
    fail = lambda why: sys.exit(f"render check failed: {why}")  # noqa: E731
    if dom.count("<svg") < 2:
        fail(f"expected the two inline charts in the rendered DOM, found {dom.count('<svg')}")
    if dom.count("<table") < 4:
        fail("the tables are missing from the rendered DOM")
    if re.search(r'(src|href)="https?://', dom):
        fail("the page loads something from the network")
    families = re.search(r"font-family:\s*([^;]+);", open(html, encoding="utf-8").read()).group(1)
    wanted = [f.strip().strip('"') for f in families.split(",") if f.strip() not in ("sans-serif", "serif")]
    installed = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True).stdout
    if not any(w in installed for w in wanted):
        fail(f"none of the page's fonts is installed ({', '.join(wanted)})")
    subprocess.run([chromium, *flags, f"--screenshot={png}", f"file://{html}"], capture_output=True, timeout=120, check=True)
    width, height, channels, rows = png_pixels(png)
    distinct = {rows[y][x * channels:x * channels + 3] for y in range(0, height, 7) for x in range(0, width, 7)}
    if len(distinct) < 8:
        fail(f"the screenshot is blank ({len(distinct)} colours)")
    # The page is at most 60em wide and centred: the outer 8 % on the right must stay background.
    background = rows[5][:3]
    margin = range(int(width * 0.92), width)
    drawn = sum(1 for y in range(0, height, 5) for x in margin if rows[y][x * channels:x * channels + 3] != background)
    if drawn:
        fail(f"{drawn} pixels drawn into the right margin: the layout overflows")
    print(f"render check: {png} {width}x{height}, {len(distinct)} colours, {dom.count('<svg')} charts, fonts: {wanted[0]} installed")


if __name__ == "__main__":
    main()
