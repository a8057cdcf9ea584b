"""Plugins that ship with the core and load through the same hooks as outside ones."""
