"""The chat peer: session, crypto and path-selection cores, ZMQ transport, terminal UI."""
