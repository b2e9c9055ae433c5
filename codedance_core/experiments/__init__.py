"""Experiments that test the method's claims end to end, in miniature (Mini-CodeDance).

`mini` runs the arms and seeds, `text_only` makes the no-code control's SFT data, `report`
turns the saved per-arm results into the markdown report (its figures and tables in
`report_plots`), and `families` names the task families and the groups they are reported in.
"""
