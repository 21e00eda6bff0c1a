"""The report room: what a run shows and writes.

Owns the printed summary (`summary`), the output files of a run (`outputs`: the per-packet
CSV, safe opening of outputs), and the HTML report (`html`, with its stylesheet `html.css`).
May import everything below it (`classifier.engine` and what it builds on); never the command
line.
"""
