"""report room: report.html (self-contained), summary.md, plots."""
