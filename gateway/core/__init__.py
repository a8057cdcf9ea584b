"""The gateway core: everything that does not know a partner's format."""
