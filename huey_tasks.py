"""The Huey instance the consumers run: `huey_consumer huey_tasks.huey`.

Configured from the environment exactly like the web app (webapp.settings).
"""

from webapp.db import Database
from webapp.queue import TaskQueue
from webapp.settings import Settings

settings = Settings.from_env()
queue = TaskQueue(settings, Database(settings.database_url))
huey = queue.huey
