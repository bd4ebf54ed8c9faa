"""What `make run` uses on one machine: the demo user, the supervisor, the example portal."""
