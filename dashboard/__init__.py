"""Streamlit dashboard: a read-only view of the Cassandra projections (see docs/DASHBOARD.md)."""
