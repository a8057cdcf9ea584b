"""Schakel plugin: Veilig Thuis melding and feedback."""
