"""`ccvae report`: one self-contained HTML page about a model (and a summary PNG).

`history.py` reads a run folder's metrics.jsonl and options.json (robustly: a bad line is skipped);
`pictures.py` makes the page's pictures with the interventions and `render` (traversal strips,
samples per class, a swap grid); `plots.py` draws the curves and the `ccvae eval` numbers with
matplotlib (the `report` extra, Agg, no pyplot); `page.py` puts it all in one HTML page with every
image a data: URI, every string escaped and a Content-Security-Policy that loads nothing remote;
`build.py` gathers the parts from data handed to it. Below the command line: may import util, data,
objective, model, interventions, render, animation, evaluation, training and studio.
"""
