"""The dashboard (server-rendered HTML) and chart images."""
