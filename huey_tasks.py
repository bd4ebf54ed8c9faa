"""The Huey instance the consumers run: `huey_consumer huey_tasks.huey`.

Configured from the environment exactly like the web app (webapp.settings).
"""

from webapp.settings import Settings
from webapp.workers.consumer import ConsumerSide

consumer = ConsumerSide(Settings.from_env())
huey = consumer.huey
