"""The records and their rules: the database, the task's states, kinds, listings,
the runtime, the queue and users' folders. Neither Flask views nor workers."""
