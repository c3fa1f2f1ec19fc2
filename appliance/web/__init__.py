"""HTTP routes: ingest, stats API, domains API and the dashboard pages."""
