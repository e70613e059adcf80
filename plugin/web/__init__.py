"""The HTTP edges: Flask blueprints that parse input, call the core and render."""
