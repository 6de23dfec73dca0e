#!/usr/bin/env python3
"""Writes the providers' course offers again as legacy Excel (.xls, via xlwt) and OpenDocument (.ods, via odfpy),
cell for cell from sprachkursangebote_2023_2024.xlsx (via openpyxl), so that the tests can check that all three
workbook formats give the same facts. Needs: pip install openpyxl xlwt odfpy.
"""
import datetime
import os

import openpyxl
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "sprachkursangebote_2023_2024.xlsx")


def main():
    wb = openpyxl.load_workbook(SOURCE)
    ws = wb["Angebote"]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]

    xls = xlwt.Workbook()
    sheet = xls.add_sheet("Angebote")
    date_style = xlwt.easyxf(num_format_str="DD.MM.YYYY")
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if isinstance(value, datetime.datetime):
                sheet.write(i, j, value, date_style)
            elif value is not None:
                sheet.write(i, j, value)
    xls.save(os.path.join(HERE, "sprachkursangebote_2023_2024.xls"))

    ods = OpenDocumentSpreadsheet()
    table = Table(name="Angebote")
    for row in rows:
        tr = TableRow()
        for value in row:
            if value is None:
                tc = TableCell()
            elif isinstance(value, datetime.datetime):
                tc = TableCell(valuetype="date", datevalue=value.date().isoformat())
                tc.addElement(P(text=value.strftime("%d.%m.%Y")))
            elif isinstance(value, (int, float)):
                tc = TableCell(valuetype="float", value=value)
                tc.addElement(P(text=str(value)))
            else:
                tc = TableCell(valuetype="string")
                tc.addElement(P(text=str(value)))
            tr.addElement(tc)
        table.addElement(tr)
    ods.spreadsheet.addElement(table)
    ods.save(os.path.join(HERE, "sprachkursangebote_2023_2024.ods"))


if __name__ == "__main__":
    main()
