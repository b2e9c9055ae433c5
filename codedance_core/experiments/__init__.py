"""Experiments that test the method's claims end to end (issue 9: Mini-CodeDance).

`mini` runs the arms and seeds, `text_only` makes the no-code control's SFT data, `report`
turns the saved per-arm results into the markdown report and its plots.
"""
