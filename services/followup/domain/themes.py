"""每月一题 (主动治理): a theme supervisors pick for a month from the hot topics or the KPIs,
owned by one department with its tasks; progress is the share of tasks done, and opinions on
the theme are linked to it."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.store import Aggregate

from .policy import CaseError


class ThemeTask(BaseModel):
    text: str
    done_at: datetime | None = None
    done_by: str | None = None
    note: str | None = None


class LinkedOpinion(BaseModel):
    linked_at: datetime
    linked_by: str
    tracking_no: str = ""
    title: str = ""


class Theme(Aggregate):
    month: str = Field(description="YYYY-MM")
    title: str
    source: Literal["hot_topic", "kpi"] = Field(description="热点话题 or 指标")
    source_ref: str = Field(description="The hot topic or KPI row it came from")
    department: str
    created_by: str
    created_at: datetime
    # Keyed by task number ("1", "2", …) and by opinion id: maps, not arrays (FerretDB).
    tasks: dict[str, ThemeTask]
    opinions: dict[str, LinkedOpinion] = Field(default_factory=dict)

    @property
    def progress(self) -> float:
        """The share of tasks done (0–1)."""
        done = sum(1 for t in self.tasks.values() if t.done_at is not None)
        return round(done / len(self.tasks), 4)

    def complete(self, task: str, note: str, by: str, now: datetime) -> bool:
        """A task done; False when it already was (nothing changes)."""
        found = self.tasks.get(task)
        if found is None:
            raise CaseError(404, f"Theme {self.id} has no task {task}.")
        if found.done_at is not None:
            return False
        found.done_at, found.done_by, found.note = now, by, note
        return True

    def link(self, opinion_id: str, opinion: LinkedOpinion) -> bool:
        """An opinion on the theme; False when it is linked already."""
        if opinion_id in self.opinions:
            return False
        self.opinions[opinion_id] = opinion
        return True
