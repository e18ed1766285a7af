"""The fallback server: forwards sealed chat it cannot read, between room members."""
