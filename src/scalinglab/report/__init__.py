"""`scalinglab-report`: one HTML page per study. Each section computes plain data
(sections.py), the figures are drawn from it (figures.py), and a Jinja2 template renders the
page (page.py, page.html.j2). A table tool, like the fit: no torch, no Lightning."""
