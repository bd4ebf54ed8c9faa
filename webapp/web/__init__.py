"""The Flask side: blueprints, sessions, live polls and what every response shares."""
