"""The pure exam pipeline: plain data in, plain data out; no Flask, no HTTP, no database."""
