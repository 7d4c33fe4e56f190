"""Jinja2 templates for every file a host receives (package data of eggo_nornir)."""
