"""The chronicle of a run: a static site and Markdown built from the store alone."""
