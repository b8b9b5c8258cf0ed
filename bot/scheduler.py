"""Scheduled work on APScheduler 3.x. Jobs are added by the surfaces that own them."""

from apscheduler.schedulers.asyncio import AsyncIOScheduler


class Scheduler:
    def __init__(self):
        self.aps = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        if not self.aps.running:
            self.aps.start()

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
