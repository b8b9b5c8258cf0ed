"""The policy's ``issues:`` section: the tracker projects hosts file into from a card (with the
default per area), and what reporters hear while the work goes on. One field on the root policy
(``bot.policy.Policy.issues``) points here; a bad value stops start-up like any other.

YAML shape::

    issues:
      projects:
        - tracker: github          # github | gitlab | jira | linear
          project: acme/platform   # GitHub owner/repo; GitLab group/project path; Jira project key; Linear team key
          areas: [ci, deploys]     # the default project for reports in these areas
          labels: [platform-feedback]
        - tracker: jira
          project: NET
          issue_type: Task         # Jira only: the issue type to create (the project must have it)
      progress:
        start_notices: true        # "the platform team started on FB-12" once per issue
        updates: true              # relayed updates, one DM per report a day
        marker: /notify-reporters  # a tracker comment starting with this is relayed
        update_hour: 15            # the daily batch goes out at this hour, UTC
"""

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Label = Annotated[str, Field(min_length=1, max_length=50)]

# Each tracker's own spelling of a project (checked here so a typo fails at start, not at submit).
_PROJECT = {
    "github": re.compile(r"^[\w.-]+/[\w.-]+$"),  # owner/repo
    "gitlab": re.compile(r"^(?:\d+|[\w.-]+(?:/[\w.-]+)+)$"),  # numeric id or group[/subgroup]/project
    "jira": re.compile(r"^[A-Z][A-Z0-9_]{0,49}$"),  # project key
    "linear": re.compile(r"^[A-Z][A-Z0-9]{0,9}$"),  # team key (the DOC of DOC-3)
}
_SPELLING = {"github": "owner/repo", "gitlab": "group/project or its numeric id", "jira": "a project key such as NET",
             "linear": "a team key such as DOC"}


class Project(_Strict):
    tracker: Literal["github", "gitlab", "jira", "linear"]
    project: Annotated[str, Field(min_length=1, max_length=255)]
    areas: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]] = []  # category ids it is the default for
    labels: Annotated[list[Label], Field(max_length=20)] = []  # offered pre-selected in the modal
    issue_type: Annotated[str, Field(min_length=1, max_length=64)] = "Task"  # Jira only

    @model_validator(mode="after")
    def _spelled(self) -> "Project":
        if not _PROJECT[self.tracker].match(self.project):
            raise ValueError(f"{self.tracker} project {self.project!r}: write it as {_SPELLING[self.tracker]}")
        return self

    @property
    def ident(self) -> str:
        """``tracker:project``: the value the modal's select carries."""
        return f"{self.tracker}:{self.project}"


class Progress(_Strict):
    start_notices: bool = True
    updates: bool = True
    marker: Annotated[str, Field(min_length=2, max_length=40, pattern=r"^\S+$")] = "/notify-reporters"
    update_hour: Annotated[int, Field(ge=0, le=23)] = 15  # UTC hour of the daily batch of updates


class IssuePolicy(_Strict):
    projects: Annotated[list[Project], Field(max_length=100)] = []
    progress: Progress = Progress()

    @field_validator("projects")
    @classmethod
    def _distinct(cls, projects: list[Project]) -> list[Project]:
        seen: set[str] = set()
        areas: dict[str, str] = {}  # area -> its default project
        for p in projects:
            if p.ident in seen:
                raise ValueError(f"{p.ident} is listed twice")
            seen.add(p.ident)
            for area in p.areas:
                if area in areas:
                    raise ValueError(f"area {area!r} has two default projects ({areas[area]} and {p.ident})")
                areas[area] = p.ident
        return projects

    def find(self, ident: str) -> Project | None:
        return next((p for p in self.projects if p.ident == ident), None)

    def default_for(self, categories: list[str]) -> Project | None:
        """The project of the report's first area that has one, else the first listed (None: none listed)."""
        for category in categories:
            for p in self.projects:
                if category in p.areas:
                    return p
        return self.projects[0] if self.projects else None
