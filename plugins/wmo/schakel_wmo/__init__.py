"""Schakel plugin: iWmo 3.2 and ondersteuningsplan."""
