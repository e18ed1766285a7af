"""The discovery relay: room codes, a short-lived member registry, pushes and PUB room events."""
