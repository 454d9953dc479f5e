"""The runtime's machinery: scheduler, node, workers, protocol. Not public API."""
