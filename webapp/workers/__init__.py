"""The consumer side: the Huey consumer, the worker that runs tracked tasks, and
the maintenance that repairs what failures leave."""
