"""Cache service: key/value with TTL and shared hit statistics."""
