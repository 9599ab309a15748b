"""NATS plugin of the Exchange Connection Hub (placeholder while the package is built)."""
