"""Monitoring: health of every service, alerts and a dashboard."""
