"""Revision files, one per schema change, named ``NNNN_<what>.py`` with ``revision = "NNNN"``."""
