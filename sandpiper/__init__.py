"""The `sandpiper` CLI: the one composition root that builds and runs the other packages."""
