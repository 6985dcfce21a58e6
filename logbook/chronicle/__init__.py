"""The chronicle of a run (#6): a static site and Markdown built from the store alone."""
