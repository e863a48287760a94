"""Reads behind the dashboard pages; every page costs a bounded number of queries."""
